"""Build (preview) and create draft invoices from DraftInvoice data.

`invoice_build` computes everything an invoice would show — tax decision, discounts,
totals, customer credit — without writing; previews and the upcoming invoice use it.
`invoice_create` persists the same result as a draft invoice with its lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext

from billing.limits import MAX_TOTAL, check_amount
from billing.models import InvoiceItem
from config import clock
from config.errors import DomainError
from config.types import JsonDict
from customers.models import Customer
from invoices.calculations import LineInput, TaxGroup, compute_invoice_totals, credit_split
from invoices.models import Brand, Invoice, InvoiceLine
from invoices.selectors import brand_for_customer, customer_balance
from invoices.services.tax import TaxTable, line_tax_decisions, tax_decision_for
from invoices.types import CreditSource, DraftInvoice, InvoicePreview, PreviewLine
from invoices.vat import VatDecision


class InvoiceDraftError(DomainError, ValueError):
    code = "invoice_draft_refused"

    """A draft invoice that cannot be built (e.g. a line in another currency)."""


def line_inputs(
    *, draft: DraftInvoice, decision: VatDecision, line_decisions: Sequence[VatDecision] | None = None
) -> list[LineInput]:
    """The calculation inputs of `draft`'s lines, each taxed by its own decision
    (`line_decisions`, in line order: tax codes) or all by `decision`."""
    decisions = line_decisions if line_decisions is not None else [decision] * len(draft.lines)
    return [
        LineInput(
            amount=line.amount,
            tax_rate=line_decision.rate,
            tax_category=line_decision.category,
            tax_inclusive=line.tax_inclusive,
            discountable=line.discountable,
            product_key=line.product_key,
            exemption_reason_code=line_decision.exemption_reason_code,
            exemption_reason=line_decision.exemption_reason,
        )
        for line, line_decision in zip(draft.lines, decisions, strict=True)
    ]


def invoice_build(
    *,
    customer: Customer,
    draft: DraftInvoice,
    brand: Brand | None = None,
    decision: VatDecision | None = None,
    balance: int | None = None,
    tax_table: TaxTable | None = None,
    decision_cache: dict[tuple[object, ...], VatDecision] | None = None,
    credits: CreditSource | None = None,
    at: datetime | None = None,
) -> InvoicePreview:
    """What the invoice would be if issued now (or at `at`). Writes nothing.

    `brand`, `decision`, `balance`, `tax_table` and `decision_cache` may be passed in by
    callers that build many invoices at once; otherwise they are looked up. `decision`
    is the VAT decision without a tax code; each line is then taxed by its own tax code
    (`line_tax_decisions`). `credits`, when given, are the customer's prepaid credits: they pay
    first, as finalization does, then the balance (the previews customers confirm count them).
    """
    if draft.customer_id != customer.pk:
        raise InvoiceDraftError(gettext("The draft belongs to another customer."))
    brand = brand or brand_for_customer(customer=customer)
    if tax_table is None:
        tax_table = TaxTable.load(price_ids=[line.price_id for line in draft.lines])
    decision = decision or tax_decision_for(brand=brand, customer=customer, rates=tax_table.rates)
    decisions = line_tax_decisions(
        brand=brand, customer=customer, draft=draft, base=decision, table=tax_table, cache=decision_cache
    )
    totals = compute_invoice_totals(
        currency=draft.currency,
        lines=line_inputs(draft=draft, decision=decision, line_decisions=decisions),
        discounts=[discount.discount for discount in draft.discounts],
        stacking=settings.TARIF_DISCOUNT_STACKING,
    )
    if balance is None:
        balance = customer_balance(customer_id=customer.pk, currency=draft.currency)
    lines = tuple(
        PreviewLine(
            draft=line,
            totals=line_totals,
            tax_rate=line_decision.rate,
            tax_category=line_decision.category,
            tax_code=line_decision.tax_code,
            exemption_reason_code=line_decision.exemption_reason_code,
            exemption_reason=line_decision.exemption_reason,
        )
        for line, line_totals, line_decision in zip(draft.lines, totals.lines, decisions, strict=True)
    )
    credits_applied = 0
    if credits is not None:
        credits_applied = credits.consume(lines=lines, total=totals.total, at=at or clock.now(customer=customer))
    balance_applied = credit_split(total=totals.total - credits_applied, balance=balance)
    return InvoicePreview(
        customer_id=customer.pk,
        brand_id=brand.pk,
        currency=draft.currency,
        lines=lines,
        totals=totals,
        discount_labels=tuple(discount.label for discount in draft.discounts),
        tax_breakdown=totals.tax_breakdown,
        vat_category=decision.category,
        vat_rate=decision.rate,
        # The reverse-charge or export mention, when a line is taxed that way (not when every
        # line's tax code made it exempt).
        vat_mention_key=decision.mention_key
        if any(line_decision.category == decision.category for line_decision in decisions) or not decisions
        else None,
        balance_applied=balance_applied,
        amount_due=totals.total - credits_applied - balance_applied,
        credits_applied=credits_applied,
    )


def rate_text(rate: Decimal) -> str:
    """A percentage as stored in JSON: ``20``, ``5.5`` (no trailing zeros, no exponent)."""
    text = format(rate, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def tax_breakdown_rows(groups: Iterable[TaxGroup]) -> list[JsonDict]:
    """The `tax_breakdown` JSON of an invoice or credit note. A group with an exemption
    reason (exempt, out of scope by tax code) also carries `exemption_reason_code` and
    `exemption_reason` (EN 16931 BT-121, BT-120); other groups' rows are as before."""
    rows: list[JsonDict] = []
    for group in groups:
        row: JsonDict = {
            "category": group.category,
            "rate": rate_text(group.rate),
            "inclusive": group.inclusive,
            "taxable_amount": group.taxable_amount,
            "tax_amount": group.tax_amount,
        }
        if group.exemption_reason_code or group.exemption_reason:
            row["exemption_reason_code"] = group.exemption_reason_code
            row["exemption_reason"] = group.exemption_reason
        rows.append(row)
    return rows


def _discount_sources(*, draft: DraftInvoice, amounts: tuple[int, ...]) -> list[JsonDict]:
    """Which discount rows the invoice used and how much each took (issue 16): its finalization
    counts their periods and uses up carry-over amounts. Kept apart from the shown `discounts`."""
    sources: list[JsonDict] = []
    for discount, amount in zip(draft.discounts, amounts, strict=True):
        if discount.subscription_discount_id is not None:
            sources.append({"subscription_discount": discount.subscription_discount_id, "amount": amount})
        elif discount.customer_discount_id is not None:
            sources.append({"customer_discount": discount.customer_discount_id, "amount": amount})
    return sources


def _discount_source_field(*, draft: DraftInvoice, amounts: tuple[int, ...]) -> JsonDict:
    sources = _discount_sources(draft=draft, amounts=amounts)
    return {"discount_sources": sources} if sources else {}


def invoice_fields(*, draft: DraftInvoice, preview: InvoicePreview, language: str) -> JsonDict:
    """Column values of a draft Invoice row for `preview` (shared with the bulk path)."""
    totals = preview.totals
    return {
        "brand_id": preview.brand_id,
        "customer_id": draft.customer_id,
        "subscription_id": draft.subscription_id,
        "status": Invoice.Status.DRAFT,
        "billing_reason": draft.billing_reason,
        "collection_method": draft.collection_method,
        "currency": draft.currency,
        "language": language,
        "period_start": draft.period_start,
        "period_end": draft.period_end,
        "subtotal": totals.subtotal,
        "discount_total": totals.discount_total,
        "tax_total": totals.tax_total,
        "total_excluding_tax": totals.total_excluding_tax,
        "total": totals.total,
        "amount_due": preview.amount_due,
        "amount_remaining": preview.amount_due,
        "tax_breakdown": tax_breakdown_rows(preview.tax_breakdown),
        "memo": draft.memo,
        "custom_fields": {
            "discounts": [
                {"label": label, "amount": amount}
                for label, amount in zip(preview.discount_labels, totals.discount_amounts, strict=True)
            ],
            "vat_mention": preview.vat_mention_key,
            "days_until_due": draft.days_until_due,
            **_discount_source_field(draft=draft, amounts=totals.discount_amounts),
        },
    }


# InvoiceLine's columns in model order: lines are built positionally (2-3x faster than
# keyword arguments, which counts in the billing run). A new column fails loudly here.
_LINE_COLUMNS = (
    "id",
    "invoice_id",
    "position",
    "kind",
    "description",
    "price_id",
    "quantity",
    "unit_amount",
    "amount",
    "discount_amount",
    "tax_rate",
    "tax_category",
    "tax_inclusive",
    "tax_amount",
    "period_start",
    "period_end",
    "metadata",
    "tax_code",
    "tax_exemption_reason_code",
    "tax_exemption_reason",
)
if tuple(field.attname for field in InvoiceLine._meta.concrete_fields) != _LINE_COLUMNS:
    raise RuntimeError("InvoiceLine's columns changed: update _LINE_COLUMNS and invoice_line_objects")


def invoice_line_objects(*, preview: InvoicePreview, invoice_id: int | None = None) -> list[InvoiceLine]:
    return [
        # Positional arguments in column order (checked against _LINE_COLUMNS at import): the
        # plugin maps positional Model() arguments onto both `invoice` and `invoice_id`.
        InvoiceLine(  # type: ignore[misc]
            None,
            invoice_id,
            position,
            line.draft.kind,
            line.draft.description[:300],
            line.draft.price_id,
            line.draft.quantity,
            line.draft.unit_amount,
            line.draft.amount,
            line.totals.discount_amount,
            line.tax_rate,
            line.tax_category,
            line.draft.tax_inclusive,
            line.totals.tax_amount,
            line.draft.period_start,
            line.draft.period_end,
            dict(line.draft.metadata),
            line.tax_code,
            line.exemption_reason_code,
            line.exemption_reason[:300],
        )
        for position, line in enumerate(preview.lines)
    ]


@transaction.atomic(savepoint=False)
def invoice_create(*, draft: DraftInvoice, at: datetime, customer: Customer | None = None) -> Invoice:
    """Persist `draft` as a draft invoice; pending invoice items it consumes are attached to it."""
    customer = customer or Customer.objects.get(pk=draft.customer_id)
    preview = invoice_build(customer=customer, draft=draft)
    # Bounds (billing/limits.py): an invoice's total stays far inside the 64-bit columns and
    # every sum built on it (balance, ledger, reports), whatever path built the draft.
    check_amount(preview.totals.total, field="total", allow_negative=True, maximum=MAX_TOTAL)
    invoice = Invoice.objects.create(
        **invoice_fields(draft=draft, preview=preview, language=customer.preferred_language)
    )
    InvoiceLine.objects.bulk_create(invoice_line_objects(preview=preview, invoice_id=invoice.pk))
    item_ids = [line.invoice_item_id for line in draft.lines if line.invoice_item_id is not None]
    if item_ids:
        attached = InvoiceItem.objects.filter(pk__in=item_ids, invoice__isnull=True).update(invoice=invoice)
        if attached != len(item_ids):
            raise InvoiceDraftError(gettext("A pending invoice item was already invoiced."))
    return invoice
