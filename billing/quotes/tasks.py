"""Celery tasks of the quotes: thin (STYLE 9)."""

from __future__ import annotations

from celery import shared_task

from billing.quotes.services import quotes_expire_due


@shared_task(name="quotes.expire_due", acks_late=True)
def expire_due() -> int:
    return quotes_expire_due()
