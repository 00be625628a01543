"""Celery tasks: thin wrappers that call one service."""

from __future__ import annotations

from celery import shared_task

from reports.home_figures import home_figures_refresh_all
from reports.summaries import report_summaries_refresh
from reports.summary import mrr_summary_refresh
from reports.usage_digest import usage_digest_refresh


@shared_task(acks_late=True, name="reports.refresh_mrr_summary")
def refresh_mrr_summary() -> int:
    """Beat entry point, and the only scheduled writer of the MRR summary: reports read it
    as it stands and show when it was refreshed ("as of"), they never refresh it."""
    return mrr_summary_refresh()


@shared_task(acks_late=True, name="reports.refresh_summaries")
def refresh_summaries(full: bool = False) -> dict[str, int]:
    """Beat entry point of the month summaries (billed, invoices by status, revenue
    recognition, receivables, payments): the months touched since the last refresh; `full`
    (nightly) rebuilds."""
    return report_summaries_refresh(full=full)


@shared_task(acks_late=True, name="reports.refresh_home_figures")
def refresh_home_figures() -> int:
    """Beat entry point (every minute) and the billing run's follow-up: the console home's
    whole-book counts of both modes, stored with their time (reports/home_figures.py)."""
    return home_figures_refresh_all()


@shared_task(acks_late=True, name="reports.refresh_usage_digest")
def refresh_usage_digest() -> int:
    """Beat entry point of the usage report's digest (its preset periods: reports/usage_digest.py)."""
    return usage_digest_refresh()
