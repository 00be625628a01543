"""Celery tasks of e-invoicing: thin (STYLE 9), on the `documents` queue."""

from __future__ import annotations

from celery import shared_task

from invoices.einvoicing.services import accounts_poll_statuses, transmission_submit, transmissions_submit_due


@shared_task(name="einvoicing.submit_transmission", acks_late=True)
def submit_transmission(transmission_id: int) -> str:
    return transmission_submit(transmission_id=transmission_id).state


@shared_task(name="einvoicing.submit_due", acks_late=True)
def submit_due() -> int:
    return transmissions_submit_due()


@shared_task(name="einvoicing.poll_statuses", acks_late=True)
def poll_statuses() -> int:
    return accounts_poll_statuses()
