"""Celery tasks of the ledger: thin wrappers over services (ids only)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from invoices.ledger.export_jobs import ledger_export_run, ledger_exports_sweep


@shared_task(name="ledger.export_run", bind=True, acks_late=True, max_retries=0)
def export_run(self: Any, *, export_id: int) -> str:
    export = ledger_export_run(export_id=export_id)
    return export.status if export else "skipped"


@shared_task(name="ledger.exports_sweep", bind=True, acks_late=True, max_retries=0)
def exports_sweep(self: Any) -> int:
    return ledger_exports_sweep()
