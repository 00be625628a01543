"""Reads of the prepaid credits (portal, console, API)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet, Sum

from billing.wallets.models import CreditGrant, WalletTransaction
from customers.models import Customer


@dataclass(frozen=True, slots=True)
class WalletSummary:
    currency: str
    balance: int  # active grants' remaining
    pending: int  # paid credits awaiting payment


def wallet_summaries(*, customer: Customer) -> list[WalletSummary]:
    rows: dict[str, dict[str, int]] = {}
    for currency, status, remaining, amount in (
        CreditGrant.objects.filter(
            customer=customer, status__in=[CreditGrant.Status.ACTIVE, CreditGrant.Status.PENDING]
        )
        .values("currency", "status")
        .annotate(remaining=Sum("remaining"), amount=Sum("amount"))
        .values_list("currency", "status", "remaining", "amount")
    ):
        row = rows.setdefault(currency, {"balance": 0, "pending": 0})
        if status == CreditGrant.Status.ACTIVE:
            row["balance"] += int(remaining or 0)
        else:
            row["pending"] += int(amount or 0)
    return [WalletSummary(currency=currency, **row) for currency, row in sorted(rows.items())]


def credit_grants_for_customer(*, customer: Customer) -> QuerySet[CreditGrant]:
    return CreditGrant.objects.filter(customer=customer).order_by("-created_at", "-pk")


def wallet_history_for_customer(*, customer: Customer, limit: int = 50) -> QuerySet[WalletTransaction]:
    return (
        WalletTransaction.objects.filter(wallet__customer=customer)
        .select_related("wallet", "invoice")
        .order_by("-created_at", "-pk")[:limit]
    )
