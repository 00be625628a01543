"""Celery tasks of the ledger: thin (STYLE 9)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from config import clock
from invoices.ledger.recognition import revenue_recognize


@shared_task(name="ledger.recognize_revenue", acks_late=True)
def recognize_revenue() -> int:
    """Recognise what became due up to the end of yesterday (monthly mode: finished months only)."""
    yesterday = timezone.localdate(clock.system_now()) - timedelta(days=1)
    return revenue_recognize(through=yesterday)
