"""Celery tasks of the ledger: thin wrappers over services (STYLE 9, ids only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task
from django.utils import timezone

from config import clock
from invoices.ledger.export_jobs import ledger_export_run, ledger_exports_sweep
from invoices.ledger.recognition import revenue_recognize
from invoices.ledger.services import ledger_validate_all


@shared_task(name="ledger.recognize_revenue", acks_late=True)
def recognize_revenue() -> int:
    """Recognise what became due up to the end of yesterday (monthly mode: finished months only)."""
    yesterday = timezone.localdate(clock.system_now()) - timedelta(days=1)
    return revenue_recognize(through=yesterday)


@shared_task(name="ledger.validate_entries", acks_late=True)
def validate_entries() -> int:
    """Number the entries dated up to the validation lag (docs/accounting.md "Validation")."""
    return ledger_validate_all()


@shared_task(name="ledger.export_run", bind=True, acks_late=True, max_retries=0)
def export_run(self: Any, *, export_id: int) -> str:
    export = ledger_export_run(export_id=export_id)
    return export.status if export else "skipped"


@shared_task(name="ledger.exports_sweep", bind=True, acks_late=True, max_retries=0)
def exports_sweep(self: Any) -> int:
    return ledger_exports_sweep()
