"""Plain data passed between billing (which decides what to charge) and invoices
(which prices tax, applies discounts and balance, and persists)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from invoices.calculations import DiscountInput, InvoiceTotals, LineTotals, TaxGroup


@dataclass(frozen=True, slots=True)
class DraftLine:
    kind: str  # InvoiceLine.Kind value: subscription, usage, proration, one_off
    description: str
    amount: int  # minor units, signed, before discount and (exclusive) tax
    quantity: Decimal = Decimal(1)
    unit_amount: Decimal | None = None
    price_id: int | None = None
    product_key: str | None = None  # "product:<id>", for coupons limited to products
    period_start: datetime | None = None
    period_end: datetime | None = None
    tax_inclusive: bool = False
    discountable: bool = True
    invoice_item_id: int | None = None  # the pending billing.InvoiceItem this line consumes
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DraftDiscount:
    discount: DiscountInput
    label: str  # e.g. "Bienvenue (10 % off)"
    coupon_id: int | None = None
    # The discount row it comes from (billing's SubscriptionDiscount / CustomerDiscount), recorded in
    # the invoice's custom_fields["discount_sources"] so its finalization counts the period and the carry-over.
    subscription_discount_id: int | None = None
    customer_discount_id: int | None = None


@dataclass(frozen=True, slots=True)
class DraftInvoice:
    customer_id: int
    currency: str
    billing_reason: str  # Invoice.BillingReason value
    lines: tuple[DraftLine, ...]
    discounts: tuple[DraftDiscount, ...] = ()
    subscription_id: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    collection_method: str = "charge_automatically"
    days_until_due: int | None = None
    memo: str = ""


@dataclass(frozen=True, slots=True)
class PreviewLine:
    draft: DraftLine
    totals: LineTotals
    tax_rate: Decimal
    tax_category: str
    tax_code: str = ""  # the TaxCode that decided the line's VAT ("" = the standard rate)
    exemption_reason_code: str = ""
    exemption_reason: str = ""


@dataclass(frozen=True, slots=True)
class InvoicePreview:
    """An invoice as it would be issued now, computed without writing anything."""

    customer_id: int
    brand_id: int
    currency: str
    lines: tuple[PreviewLine, ...]
    totals: InvoiceTotals
    discount_labels: tuple[str, ...]
    tax_breakdown: tuple[TaxGroup, ...]
    vat_category: str
    vat_rate: Decimal
    vat_mention_key: str | None
    balance_applied: int  # customer credit that would be used; negative: a negative total handed to the balance
    amount_due: int  # total - credits_applied - balance_applied, never negative
    credits_applied: int = 0  # prepaid credits (wallets) that would pay it, before the balance

    @property
    def subtotal(self) -> int:
        return self.totals.subtotal

    @property
    def total(self) -> int:
        return self.totals.total


class CreditSource(Protocol):
    """Prepaid credits a preview may count (billing's wallets implement it, read-only): how much
    they would pay of an invoice with these lines and total issued at `at`, served in call order."""

    def consume(self, *, lines: tuple[PreviewLine, ...], total: int, at: datetime) -> int: ...
