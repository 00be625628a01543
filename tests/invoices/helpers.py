"""Helpers for the invoice tests: drafts from plain amounts, issue in one call."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from invoices.calculations import DiscountInput
from invoices.models import Invoice
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftDiscount, DraftInvoice, DraftLine

ISSUED_AT = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def draft_for(
    customer,
    amounts: Iterable[int] = (1000,),
    *,
    currency: str = "EUR",
    inclusive: bool = False,
    discounts: Iterable[DiscountInput] = (),
    collection_method: str = "charge_automatically",
    days_until_due: int | None = None,
    item_ids: Iterable[int | None] = (),
    period_start: datetime | None = None,
) -> DraftInvoice:
    amounts = list(amounts)
    item_ids = list(item_ids) or [None] * len(amounts)
    return DraftInvoice(
        customer_id=customer.pk,
        currency=currency,
        billing_reason="manual",
        lines=tuple(
            DraftLine(
                kind="one_off",
                description=f"Item {index + 1}",
                amount=amount,
                tax_inclusive=inclusive,
                invoice_item_id=item_id,
            )
            for index, (amount, item_id) in enumerate(zip(amounts, item_ids, strict=True))
        ),
        discounts=tuple(
            DraftDiscount(discount=discount, label=f"Discount {index + 1}") for index, discount in enumerate(discounts)
        ),
        collection_method=collection_method,
        days_until_due=days_until_due,
        period_start=period_start,
    )


def create_draft(customer, amounts: Iterable[int] = (1000,), *, at: datetime = ISSUED_AT, **kwargs) -> Invoice:
    return invoice_create(draft=draft_for(customer, amounts, **kwargs), at=at, customer=customer)


def issue(customer, amounts: Iterable[int] = (1000,), *, at: datetime = ISSUED_AT, **kwargs) -> Invoice:
    """Create a draft for `customer` with one line per amount and finalize it at `at`."""
    return invoice_finalize(invoice=create_draft(customer, amounts, at=at, **kwargs), at=at)


def sequence_number(number: str) -> int:
    """The counter part of a number formatted like PREFIX-YYYY-000123."""
    return int(number.rsplit("-", 1)[1])
