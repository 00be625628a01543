"""Celery tasks of checkout sessions: thin (STYLE 9)."""

from __future__ import annotations

from celery import shared_task

from billing.checkout.services import checkout_sessions_expire_overdue


@shared_task(name="checkout.expire_sessions", acks_late=True)
def expire_sessions() -> int:
    """Beat entry point: expire open sessions past their expiry (each records checkout.session.expired)."""
    return checkout_sessions_expire_overdue()
