"""Helpers for the prepaid credit tests."""

from __future__ import annotations

from datetime import UTC, datetime

from billing.wallets.models import CreditGrant
from billing.wallets.services import GrantRequest, credit_grant_create

GRANTED_AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def grant(customer, amount: int, *, at: datetime = GRANTED_AT, **fields) -> CreditGrant:
    """A promotional grant (unless `category` says otherwise) made through the service."""
    fields.setdefault("currency", "EUR")
    return credit_grant_create(customer=customer, request=GrantRequest(amount=amount, **fields), at=at)
