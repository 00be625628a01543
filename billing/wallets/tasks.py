"""Celery tasks of the prepaid credits: thin, ids only (STYLE 9)."""

from __future__ import annotations

from celery import shared_task

from billing.wallets.services import credit_grants_settle, top_ups_invoice, wallets_sweep


@shared_task(name="wallets.sweep", acks_late=True)
def sweep() -> dict[str, int]:
    return wallets_sweep()


@shared_task(name="wallets.settle", acks_late=True)
def settle(*, invoice_ids: list[int]) -> int:
    return credit_grants_settle(invoice_ids=invoice_ids)


@shared_task(name="wallets.top_ups_invoice", acks_late=True)
def invoice_top_ups(*, grant_ids: list[int]) -> int:
    return top_ups_invoice(grant_ids=grant_ids)
