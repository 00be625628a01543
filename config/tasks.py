"""Celery tasks of the API framework: thin wrappers over config/api services."""

from __future__ import annotations

from celery import shared_task

from config.api.idempotency import idempotency_records_purge as purge


@shared_task(acks_late=True, name="config.idempotency_records_purge")
def idempotency_records_purge() -> int:
    """Beat entry point (hourly): forget idempotency records past their 24 hours."""
    return purge()
