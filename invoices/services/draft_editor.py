"""Draft invoices typed by finance staff: create a draft for a customer, then add, change and
remove its lines until it is finalized (`invoices.services.finalize.invoice_finalize`).

Every write locks the draft, refuses anything but a draft, and recomputes the draft's tax
and totals from its lines with `invoices.calculations` exactly as finalization re-checks
them (`invoice_totals_from_lines`): each line is taxed on its amount after discount, tax
rounded once per tax group, so a draft edited here always reconciles when it is issued.

A line is either a catalog price (its amount for the quantity, its currency, its tax
behaviour) or a free description with a unit amount. Its tax is either the automatic VAT
decision for the brand and the customer (`tax_decision_for`, what the billing run applies)
or one of the configured tax rates. Prices and customers of the other mode are refused,
so are other currencies, metered prices, and amounts outside `billing.limits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext as _

from billing.limits import MAX_TOTAL, check_amount, check_quantity
from billing.models import Price
from billing.selectors import price_amount_for
from config import clock
from config.errors import DomainError
from config.events.log import event_record
from config.modes import object_livemode
from config.types import ActingUser
from customers.models import Customer
from invoices.calculations import CalculationError, TaxGroup, credit_split
from invoices.locks import invoice_qs_for_update
from invoices.models import Invoice, InvoiceLine, TaxRate
from invoices.selectors import brand_for_customer, customer_balance
from invoices.services.documents import DEFAULT_DAYS_UNTIL_DUE, SEND_INVOICE
from invoices.services.drafts import tax_breakdown_rows
from invoices.services.finalize import days_until_due, due_at_for, totals_of_lines
from invoices.services.numbering import customer_numbered_as_test, number_series_peek
from invoices.services.tax import tax_decision_for

COLLECTION_METHODS = ("charge_automatically", SEND_INVOICE)
MAX_DAYS_UNTIL_DUE = 365
MAX_DRAFT_LINES = 200


class DraftEditError(DomainError):
    """A draft edit the rules refuse (not a draft, wrong currency or mode, bad amount...)."""

    code = "invoice_draft_refused"
    http_status = 409


@dataclass(frozen=True, slots=True)
class LineTax:
    """How one line is taxed: its rate and EN 16931 category."""

    rate: Decimal
    category: str


def _refuse(message: str, code: str = "invoice_draft_refused") -> DraftEditError:
    return DraftEditError(message, code=code)


def _lock_draft(invoice: Invoice) -> Invoice:
    locked = invoice_qs_for_update().select_related("customer", "brand").get(pk=invoice.pk)
    if locked.status != Invoice.Status.DRAFT:
        raise _refuse(
            _("Invoice %(number)s is %(status)s: only a draft's lines can change; correct it with a credit note.")
            % {"number": locked.number or f"#{locked.pk}", "status": locked.get_status_display()},
            "invalid_state",
        )
    return locked


def line_tax_for(*, invoice: Invoice, tax_rate: TaxRate | None) -> LineTax:
    """The automatic VAT decision (brand and customer) when `tax_rate` is None, else that rate."""
    if tax_rate is None:
        decision = tax_decision_for(brand=invoice.brand, customer=invoice.customer)
        return LineTax(rate=decision.rate, category=decision.category)
    if not tax_rate.active:
        raise _refuse(_("The tax rate %(rate)s is no longer active.") % {"rate": tax_rate}, "tax_rate")
    rate = Decimal(tax_rate.percentage)
    return LineTax(rate=rate, category="S" if rate > 0 else "Z")


def _check_customer(customer: Customer, currency: str | None) -> str:
    currency = (currency or customer.currency).upper()
    if currency != customer.currency:
        raise _refuse(
            _("%(customer)s is billed in %(customer_currency)s; a draft in %(currency)s cannot be issued to them.")
            % {"customer": customer, "customer_currency": customer.currency, "currency": currency},
            "customer_currency",
        )
    return currency


@transaction.atomic(savepoint=False)
def invoice_draft_create(
    *,
    customer: Customer,
    currency: str | None = None,
    collection_method: str = SEND_INVOICE,
    days_until_due: int | None = None,
    memo: str = "",
    acting_user: ActingUser = None,
) -> Invoice:
    """An empty draft invoice for `customer` in its currency, from its brand, in its language."""
    currency = _check_customer(customer, currency)
    if collection_method not in COLLECTION_METHODS:
        raise _refuse(_("Unknown collection method %(method)r.") % {"method": collection_method}, "collection_method")
    if days_until_due is None:
        days_until_due = DEFAULT_DAYS_UNTIL_DUE
    if isinstance(days_until_due, bool) or not isinstance(days_until_due, int):
        raise _refuse(_("Days until due is a whole number of days."), "days_until_due")
    if not 0 <= days_until_due <= MAX_DAYS_UNTIL_DUE:
        raise _refuse(
            _("Days until due is between 0 and %(max)d.") % {"max": MAX_DAYS_UNTIL_DUE},
            "days_until_due",
        )
    brand = brand_for_customer(customer=customer)
    # The VAT decision is checked now, so a customer without a configured rate is refused at once.
    decision = tax_decision_for(brand=brand, customer=customer)
    invoice = Invoice.objects.create(
        brand=brand,
        customer=customer,
        status=Invoice.Status.DRAFT,
        billing_reason=Invoice.BillingReason.MANUAL,
        collection_method=collection_method,
        currency=currency,
        language=customer.preferred_language,
        memo=memo.strip(),
        custom_fields={
            "discounts": [],
            "vat_mention": decision.mention_key,
            "days_until_due": days_until_due,
        },
    )
    event_record(
        type="invoice.created",
        object_type="invoice",
        object_id=invoice.pk,
        customer_id=customer.pk,
        occurred_at=clock.now(customer=customer),
        data={"status": invoice.status, "currency": currency, "billing_reason": invoice.billing_reason},
        acting_user=acting_user,
    )
    return invoice


@dataclass(frozen=True, slots=True)
class _LineValues:
    description: str
    quantity: int
    unit_amount: Decimal | None
    amount: int
    tax_inclusive: bool
    price: Price | None


def _line_values(
    *, invoice: Invoice, description: str, amount: int | None, price: Price | None, quantity: int
) -> _LineValues:
    if (amount is None) == (price is None):
        raise _refuse(_("Give a price or an amount, not both."), "amount_or_price")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise _refuse(_("The quantity is a whole number of at least 1."), "invalid_quantity")
    check_quantity(quantity, field="quantity")
    description = (description or "").strip()
    if price is not None:
        if object_livemode(price) != invoice.customer.livemode:
            raise _refuse(
                _("The price %(price)s belongs to the other mode (live or test) than this customer.")
                % {"price": price},
                "livemode_mismatch",
            )
        if not price.active:
            raise _refuse(_("The price %(price)s is archived.") % {"price": price}, "price")
        if price.usage_type == Price.UsageType.METERED:
            raise _refuse(_("A metered price is billed from usage, not typed on an invoice."), "price")
        if price.currency.upper() != invoice.currency:
            raise _refuse(
                _("The price is in %(price)s but the invoice is in %(invoice)s.")
                % {"price": price.currency.upper(), "invoice": invoice.currency},
                "currency",
            )
        line_amount = price_amount_for(price=price, quantity=quantity)
        unit = Decimal(price.unit_amount) if price.scheme == Price.Scheme.PER_UNIT and price.unit_amount else None
        name = price.product.name + (f" — {price.nickname}" if price.nickname else "")
        return _LineValues(
            description=description or name,
            quantity=quantity,
            unit_amount=unit,
            amount=line_amount,
            tax_inclusive=price.tax_behavior == Price.TaxBehavior.INCLUSIVE,
            price=price,
        )
    assert amount is not None
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise _refuse(_("The amount is a positive number; correct an issued invoice with a credit note."), "amount")
    check_amount(amount, field="amount")
    if not description:
        raise _refuse(_("Describe the line: the customer reads it on the invoice."), "description")
    line_amount = amount * quantity
    check_amount(line_amount, field="amount", maximum=MAX_TOTAL)
    return _LineValues(
        description=description,
        quantity=quantity,
        unit_amount=Decimal(amount),
        amount=line_amount,
        tax_inclusive=False,
        price=None,
    )


@dataclass(frozen=True, slots=True)
class DraftTotals:
    """A draft's totals as finalization will re-check them, and what the customer's credit pays."""

    currency: str
    subtotal: int
    discount_total: int
    tax_total: int
    total: int
    total_excluding_tax: int
    tax_breakdown: tuple[TaxGroup, ...]
    line_taxes: tuple[int, ...]  # each line's share of its tax group's tax, in the lines' order
    balance_applied: int
    amount_due: int


def draft_totals(*, invoice: Invoice, lines: Sequence[InvoiceLine]) -> DraftTotals:
    """Tax and totals of `lines` (saved or not) on `invoice`: the rule finalization re-checks."""
    try:
        totals, line_taxes = totals_of_lines(currency=invoice.currency, lines=lines)
    except CalculationError as error:
        raise _refuse(str(error), "tax") from error
    total = totals.total
    check_amount(total, field="total", allow_negative=True, maximum=MAX_TOTAL)
    balance_applied = credit_split(
        total=total, balance=customer_balance(customer_id=invoice.customer_id, currency=invoice.currency)
    )
    return DraftTotals(
        currency=invoice.currency,
        subtotal=totals.subtotal,
        discount_total=totals.discount_total,
        tax_total=totals.tax_total,
        total=total,
        total_excluding_tax=totals.total_excluding_tax,
        tax_breakdown=totals.tax_breakdown,
        line_taxes=line_taxes,
        balance_applied=balance_applied,
        amount_due=total - balance_applied,
    )


def _recompute(invoice: Invoice) -> Invoice:
    """Store the locked draft's tax and totals from its lines."""
    lines = list(invoice.lines.order_by("position", "pk"))
    totals = draft_totals(invoice=invoice, lines=lines)
    changed = []
    for line, tax_amount in zip(lines, totals.line_taxes, strict=True):
        if line.tax_amount != tax_amount:
            line.tax_amount = tax_amount
            changed.append(line)
    if changed:
        InvoiceLine.objects.bulk_update(changed, ["tax_amount"])
    invoice.subtotal = totals.subtotal
    invoice.discount_total = totals.discount_total
    invoice.tax_total = totals.tax_total
    invoice.total = totals.total
    invoice.total_excluding_tax = totals.total_excluding_tax
    invoice.tax_breakdown = tax_breakdown_rows(totals.tax_breakdown)
    invoice.amount_due = totals.amount_due
    invoice.amount_remaining = totals.amount_due
    invoice.save(
        update_fields=[
            "subtotal",
            "discount_total",
            "tax_total",
            "total",
            "total_excluding_tax",
            "tax_breakdown",
            "amount_due",
            "amount_remaining",
            "updated_at",
        ]
    )
    return invoice


def invoice_draft_preview(
    *,
    invoice: Invoice,
    description: str = "",
    amount: int | None = None,
    price: Price | None = None,
    quantity: int = 1,
    tax_rate: TaxRate | None = None,
    replacing: InvoiceLine | None = None,
) -> DraftTotals:
    """Read-only: the draft's totals if this line were added (or replaced `replacing`).

    The same checks as `invoice_draft_line_add`; nothing is written or locked (the console's
    live totals while a line is typed).
    """
    if invoice.status != Invoice.Status.DRAFT:
        raise _refuse(_("Only a draft's lines can change."), "invalid_state")
    values = _line_values(invoice=invoice, description=description, amount=amount, price=price, quantity=quantity)
    tax = line_tax_for(invoice=invoice, tax_rate=tax_rate)
    candidate = InvoiceLine(
        invoice=invoice,
        description=values.description,
        amount=values.amount,
        tax_rate=tax.rate,
        tax_category=tax.category,
        tax_inclusive=values.tax_inclusive,
    )
    lines = [line for line in invoice.lines.order_by("position", "pk") if replacing is None or line.pk != replacing.pk]
    return draft_totals(invoice=invoice, lines=[*lines, candidate])


def _updated_event(invoice: Invoice, acting_user: ActingUser, change: str) -> None:
    event_record(
        type="invoice.updated",
        object_type="invoice",
        object_id=invoice.pk,
        customer_id=invoice.customer_id,
        occurred_at=clock.now(customer=invoice.customer),
        data={"status": invoice.status, "currency": invoice.currency, "total": invoice.total, "change": change},
        acting_user=acting_user,
    )


@transaction.atomic(savepoint=False)
def invoice_draft_line_add(
    *,
    invoice: Invoice,
    description: str = "",
    amount: int | None = None,
    price: Price | None = None,
    quantity: int = 1,
    tax_rate: TaxRate | None = None,
    acting_user: ActingUser = None,
) -> InvoiceLine:
    """Add a line to a draft: `price` x `quantity`, or `amount` (minor units, per unit) x `quantity`.

    `tax_rate` None applies the automatic VAT decision for the customer.
    """
    invoice = _lock_draft(invoice)
    values = _line_values(invoice=invoice, description=description, amount=amount, price=price, quantity=quantity)
    tax = line_tax_for(invoice=invoice, tax_rate=tax_rate)
    positions = list(invoice.lines.values_list("position", flat=True))
    if len(positions) >= MAX_DRAFT_LINES:
        raise _refuse(_("A draft holds at most %(count)d lines.") % {"count": MAX_DRAFT_LINES}, "too_many_lines")
    line = InvoiceLine.objects.create(
        invoice=invoice,
        position=max(positions, default=-1) + 1,
        kind=InvoiceLine.Kind.ONE_OFF,
        description=values.description[:300],
        price=values.price,
        quantity=Decimal(values.quantity),
        unit_amount=values.unit_amount,
        amount=values.amount,
        tax_rate=tax.rate,
        tax_category=tax.category,
        tax_inclusive=values.tax_inclusive,
        metadata={"tax_rate_id": tax_rate.pk if tax_rate is not None else None},
    )
    _recompute(invoice)
    _updated_event(invoice, acting_user, "line_added")
    line.refresh_from_db()
    return line


def _lock_line(line: InvoiceLine) -> tuple[Invoice, InvoiceLine]:
    invoice = _lock_draft(line.invoice)
    try:
        locked_line = invoice.lines.get(pk=line.pk)
    except InvoiceLine.DoesNotExist:
        raise _refuse(_("This line is no longer on the draft."), "not_found") from None
    return invoice, locked_line


@transaction.atomic(savepoint=False)
def invoice_draft_line_update(
    *,
    line: InvoiceLine,
    description: str = "",
    amount: int | None = None,
    price: Price | None = None,
    quantity: int = 1,
    tax_rate: TaxRate | None = None,
    acting_user: ActingUser = None,
) -> InvoiceLine:
    """Replace what a draft's line charges (same arguments as `invoice_draft_line_add`)."""
    invoice, line = _lock_line(line)
    values = _line_values(invoice=invoice, description=description, amount=amount, price=price, quantity=quantity)
    tax = line_tax_for(invoice=invoice, tax_rate=tax_rate)
    line.description = values.description[:300]
    line.price = values.price
    line.quantity = Decimal(values.quantity)
    line.unit_amount = values.unit_amount
    line.amount = values.amount
    line.discount_amount = 0
    line.tax_rate = tax.rate
    line.tax_category = tax.category
    line.tax_inclusive = values.tax_inclusive
    line.metadata = {**line.metadata, "tax_rate_id": tax_rate.pk if tax_rate is not None else None}
    line.save()
    _recompute(invoice)
    _updated_event(invoice, acting_user, "line_updated")
    line.refresh_from_db()
    return line


@transaction.atomic(savepoint=False)
def invoice_draft_line_remove(*, line: InvoiceLine, acting_user: ActingUser = None) -> Invoice:
    """Remove a line from a draft; the draft's totals follow."""
    invoice, line = _lock_line(line)
    line.delete()
    _recompute(invoice)
    _updated_event(invoice, acting_user, "line_removed")
    return invoice


@dataclass(frozen=True, slots=True)
class FinalizePreview:
    """What finalizing a draft now would issue: the number it would take (a peek, nothing
    reserved), its total, what the customer's credit would pay and the due date."""

    number: str
    total: int
    balance_applied: int
    amount_due: int
    issue_at: datetime
    due_at: datetime
    line_count: int


def invoice_finalize_preview(*, invoice: Invoice) -> FinalizePreview:
    """Read-only: the confirmation page shows it before `invoice_finalize` runs."""
    if invoice.status != Invoice.Status.DRAFT:
        raise _refuse(
            _("Invoice %(number)s is already %(status)s.")
            % {"number": invoice.number or f"#{invoice.pk}", "status": invoice.get_status_display()},
            "invalid_state",
        )
    customer = invoice.customer
    at = clock.now(customer=customer)
    number = number_series_peek(
        brand=invoice.brand, kind="invoice", at=at, test_mode=customer_numbered_as_test(customer)
    )
    applied = credit_split(
        total=invoice.total, balance=customer_balance(customer_id=customer.pk, currency=invoice.currency)
    )
    days = days_until_due(custom_fields=invoice.custom_fields)
    return FinalizePreview(
        number=number,
        total=invoice.total,
        balance_applied=applied,
        amount_due=invoice.total - applied,
        issue_at=at,
        due_at=due_at_for(at=at, collection_method=invoice.collection_method, days=days),
        line_count=invoice.lines.count(),
    )
