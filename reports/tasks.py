"""Celery tasks: thin wrappers that call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, name="reports.refresh_mrr_summary")
def refresh_mrr_summary() -> int:
    """Beat entry point: bring the MRR summary up to date, so after a billing run the
    first person to open a report does not wait for it."""
    from reports.summary import mrr_summary_refresh

    return mrr_summary_refresh()
