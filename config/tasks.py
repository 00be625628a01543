"""Celery tasks of the API framework: thin wrappers over config/api services."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, name="config.idempotency_records_purge")
def idempotency_records_purge() -> int:
    """Beat entry point (hourly): forget idempotency records past their 24 hours."""
    from config.api.idempotency import idempotency_records_purge as purge

    return purge()
