"""Credit notes: the only way to correct an issued invoice.

A credit note credits part or all of an open or paid invoice, with the invoice's tax,
and says where the money goes (the three parts add up to its total exactly):

- `reduce_amount_due`: lowers what the customer still owes on the invoice (at most
  its `amount_remaining`; the invoice is paid when nothing remains);
- `credit_to_balance`: credit on the customer balance, used by the next invoices;
- `refund`: money paid back (at most what was paid and not refunded yet). Only the
  refunds service (`billing.services.refunds`) issues it: a refund share is a credit
  note of its own, written once the gateway paid the money back; refunds in flight
  hold their amount on the invoice until then (no other credit note may take it).

With none of the three given, the credit reduces the amount due as far as it can and
the rest goes to the customer balance.

What is credited: either `lines` (a net amount, tax excluded, per invoice line; tax is
computed with the line's rate and rounded once per tax group) or `amount` (a total, tax
included, shared over the invoice's tax groups in proportion to their gross amounts
with the largest-remainder method, and the tax taken out of each share as for
tax-inclusive prices). All rounding happens in `invoices.calculations`.

Credit notes have their own gapless number series per brand and are frozen once
issued, like invoices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Sum
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config import clock
from config.events.log import event_record
from config.formatting import format_money
from config.hooks import Hook
from config.money import round_fraction
from config.types import ActingUser
from invoices.calculations import DiscountInput, LineInput, TaxGroup, compute_invoice_totals
from invoices.errors import CreditNoteError
from invoices.locks import customers_lock_balance, invoice_qs_for_update
from invoices.models import BalanceTransaction, CreditNote, CreditNoteLine, Invoice, InvoiceLine, NumberSequence
from invoices.selectors import invoice_credited
from invoices.services.documents import (
    buyer_snapshot,
    credit_note_content_hash,
    credit_note_payment_mentions,
    credit_note_reference,
    document_language,
    document_text,
    local_date,
    seller_in_language,
    seller_snapshot,
)
from invoices.services.drafts import rate_text, tax_breakdown_rows

if TYPE_CHECKING:
    from billing.models import Refund
from billing.models import Refund
from invoices.ledger.postings import post_credit_note_issued
from invoices.ledger.services import accounting_period_check_open
from invoices.services.numbering import customer_numbered_as_test, number_series_commit, number_series_lock
from invoices.services.pdf import documents_render_on_commit
from invoices.states import CREDITABLE_STATUSES, assert_invoice_transition
from invoices.vat import LEGAL_MENTIONS

Status = Invoice.Status


@dataclass(frozen=True, slots=True)
class CreditLineInput:
    invoice_line_id: int
    amount: int  # net amount to credit on that line, tax excluded, > 0
    quantity: Decimal = Decimal(1)
    description: str | None = None  # defaults to the invoice line's


@dataclass(frozen=True, slots=True)
class CreditNotePreview:
    lines: tuple[CreditNoteLine, ...]  # unsaved
    subtotal: int
    tax_total: int
    total: int
    tax_breakdown: tuple[TaxGroup, ...]


# Fired once per issued credit note, in the issuing transaction (e-invoicing queues its
# transmission: invoices/einvoicing/apps.py).
credit_note_issued = Hook("invoices.credit_note_issued")


def _positive_int(value: object, *, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CreditNoteError(
            gettext("%(field)s is a number of minor units, zero or more, not %(value)r.")
            % {"field": field, "value": value}
        )
    return value


def _line_net(line: Any) -> int:
    """The part of an invoice line that tax was computed on (after discount, without tax)."""
    net = line.amount - line.discount_amount
    return net - line.tax_amount if line.tax_inclusive else net


def _preview_from_lines(
    *, invoice: Invoice, wanted: Sequence[CreditLineInput], credited_by_line: dict[int, int]
) -> CreditNotePreview:
    invoice_lines = {line.pk: line for line in invoice.lines.all()}
    seen: set[int] = set()
    inputs: list[LineInput] = []
    for item in wanted:
        line = invoice_lines.get(item.invoice_line_id)
        if line is None:
            raise CreditNoteError(
                gettext("Invoice line #%(line)s is not a line of invoice %(number)s.")
                % {"line": item.invoice_line_id, "number": invoice.number}
            )
        if item.invoice_line_id in seen:
            raise CreditNoteError(
                gettext("Invoice line #%(line)s is credited twice in one credit note.") % {"line": item.invoice_line_id}
            )
        seen.add(item.invoice_line_id)
        if isinstance(item.amount, bool) or not isinstance(item.amount, int) or item.amount <= 0:
            raise CreditNoteError(
                gettext("Credit a positive net amount on line “%(line)s”, not %(amount)r.")
                % {"line": line.description, "amount": item.amount}
            )
        left = _line_net(line) - credited_by_line.get(line.pk, 0)
        if item.amount > left:
            raise CreditNoteError(
                gettext("Line “%(line)s” has %(left)s (tax excluded) left to credit; %(amount)s is too much.")
                % {
                    "line": line.description,
                    "left": format_money(max(left, 0), invoice.currency),
                    "amount": format_money(item.amount, invoice.currency),
                }
            )
        inputs.append(
            LineInput(
                amount=item.amount,
                tax_rate=line.tax_rate,
                tax_category=line.tax_category,
                exemption_reason_code=line.tax_exemption_reason_code,
                exemption_reason=line.tax_exemption_reason,
            )
        )
    totals = compute_invoice_totals(currency=invoice.currency, lines=inputs)
    lines = tuple(
        CreditNoteLine(
            invoice_line_id=item.invoice_line_id,
            description=(item.description or invoice_lines[item.invoice_line_id].description)[:300],
            quantity=item.quantity,
            amount=item.amount,
            tax_rate=invoice_lines[item.invoice_line_id].tax_rate,
            tax_category=invoice_lines[item.invoice_line_id].tax_category,
            tax_amount=line_totals.tax_amount,
        )
        for item, line_totals in zip(wanted, totals.lines, strict=True)
    )
    return CreditNotePreview(
        lines=lines,
        subtotal=totals.subtotal,
        tax_total=totals.tax_total,
        total=totals.total,
        tax_breakdown=totals.tax_breakdown,
    )


def _preview_from_amount(*, invoice: Invoice, amount: int) -> CreditNotePreview:
    groups = [
        (group["category"], Decimal(group["rate"]), group["taxable_amount"] + group["tax_amount"])
        for group in invoice.tax_breakdown
        if group["taxable_amount"] + group["tax_amount"] > 0
    ]
    # Exempt / out-of-scope groups keep their exemption reason on the credit note (BT-120/121).
    reasons = {
        (group["category"], Decimal(group["rate"])): (
            group.get("exemption_reason_code", ""),
            group.get("exemption_reason", ""),
        )
        for group in invoice.tax_breakdown
    }
    if not groups:
        raise CreditNoteError(
            gettext("Invoice %(number)s has nothing positive to credit.") % {"number": invoice.number}
        )
    # The amount_off rule of calculations shares `amount` over the groups in proportion
    # to their gross amounts (largest remainder): its discount shares are the credits.
    shares = compute_invoice_totals(
        currency=invoice.currency,
        lines=[
            LineInput(amount=gross, tax_rate=rate, tax_category=category, tax_inclusive=True)
            for category, rate, gross in groups
        ],
        discounts=[DiscountInput(amount_off=amount)],
    )
    if shares.discount_total != amount:
        raise CreditNoteError(
            gettext("Invoice %(number)s can be credited at most %(most)s; %(amount)s is too much.")
            % {
                "number": invoice.number,
                "most": format_money(shares.discount_total, invoice.currency),
                "amount": format_money(amount, invoice.currency),
            }
        )
    parts = [
        (category, rate, line.discount_amount)
        for (category, rate, _gross), line in zip(groups, shares.lines, strict=True)
        if line.discount_amount
    ]
    totals = compute_invoice_totals(
        currency=invoice.currency,
        lines=[
            LineInput(
                amount=gross,
                tax_rate=rate,
                tax_category=category,
                tax_inclusive=True,
                exemption_reason_code=reasons.get((category, rate), ("", ""))[0],
                exemption_reason=reasons.get((category, rate), ("", ""))[1],
            )
            for category, rate, gross in parts
        ],
    )
    lines = tuple(
        CreditNoteLine(
            description=document_text(
                invoice.language,
                _("Credit on invoice %(number)s (%(category)s %(rate)s %%)"),
                number=invoice.number,
                category=category,
                rate=rate_text(rate),
            ),
            amount=line.taxable_amount,
            tax_rate=rate,
            tax_category=category,
            tax_amount=line.tax_amount,
        )
        for (category, rate, _gross), line in zip(parts, totals.lines, strict=True)
    )
    return CreditNotePreview(
        lines=lines,
        subtotal=sum(line.amount for line in lines),
        tax_total=totals.tax_total,
        total=totals.total,
        tax_breakdown=totals.tax_breakdown,
    )


def credit_note_preview(
    *, invoice: Invoice, lines: Sequence[CreditLineInput] | None = None, amount: int | None = None
) -> CreditNotePreview:
    """The credit note `credit_note_create` would issue, without writing anything."""
    if (lines is None) == (amount is None):
        raise CreditNoteError(gettext("Credit either some invoice lines or an amount, not both and not neither."))
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise CreditNoteError(
                gettext("Credit a positive amount (tax included), not %(amount)r.") % {"amount": amount}
            )
        preview = _preview_from_amount(invoice=invoice, amount=amount)
    else:
        if not lines:
            raise CreditNoteError(gettext("Credit at least one invoice line."))
        credited = invoice_credited(invoice_id=invoice.pk)
        preview = _preview_from_lines(invoice=invoice, wanted=lines, credited_by_line=dict(credited.by_line))
    return preview


def _reserved_by_refunds(*, invoice_id: int, exclude_refund_id: int | None) -> int:
    """What refunds in flight (requested or approved, credit note not issued yet) hold on the invoice.

    A refund's credit note is issued once the gateway has paid the money back, so until
    then its amount is held: no other credit note may take it, or the refund would
    move money and then fail to write its document.
    """
    held = Refund.objects.filter(
        invoice_id=invoice_id,
        status__in=[Refund.Status.REQUESTED, Refund.Status.APPROVED],
        credit_note__isnull=True,
    )
    if exclude_refund_id is not None:
        held = held.exclude(pk=exclude_refund_id)
    return int(held.aggregate(total=Sum("amount"))["total"] or 0)


@dataclass(frozen=True, slots=True)
class CreditRoom:
    """What an invoice can still take: the one rule for "left to credit" and "left to refund"."""

    creditable: int  # total - issued credit notes - refunds in flight (held)
    refundable: int  # paid - refunded by credit notes - held, and never more than creditable
    held: int  # refunds requested or approved whose credit note is not issued yet
    credited: int  # total of the issued credit notes


def invoice_credit_room(*, invoice: Invoice, exclude_refund_id: int | None = None) -> CreditRoom:
    """What is left to credit and to refund on `invoice` (as stored; under its lock in services).

    A refund is a credit note's refund share, so what can be refunded is also bounded by
    what is left to credit: an invoice paid 100 and credited 30 to the balance refunds
    at most 70. Refunds in flight hold their amount on both. credit_note_create checks
    against this, the refunds service caps each payment's refundable amount with it
    (billing.services.refunds.refundable_amount), and the console shows it.
    """
    credited = invoice_credited(invoice_id=invoice.pk)
    held = _reserved_by_refunds(invoice_id=invoice.pk, exclude_refund_id=exclude_refund_id)
    creditable = invoice.total - credited.total - held
    refundable = min(invoice.amount_paid - credited.refunded - held, creditable)
    return CreditRoom(creditable=max(creditable, 0), refundable=max(refundable, 0), held=held, credited=credited.total)


@dataclass(frozen=True, slots=True)
class _Checked:
    invoice: Invoice
    preview: CreditNotePreview
    reduce_amount_due: int
    credit_to_balance: int
    refund: int


def _lock_and_check(
    *,
    invoice: Invoice,
    lines: Sequence[CreditLineInput] | None,
    amount: int | None,
    reduce_amount_due: int,
    credit_to_balance: int,
    refund: int,
    reason: str,
    refund_id: int | None,
) -> _Checked:
    """Lock the customer (balance) then the invoice, and check everything a credit note needs."""
    if reason not in CreditNote.Reason.values:
        raise CreditNoteError(
            gettext("Unknown credit note reason %(reason)r; expected one of %(reasons)s.")
            % {"reason": reason, "reasons": ", ".join(CreditNote.Reason.values)}
        )
    reduce_amount_due = _positive_int(reduce_amount_due, field="reduce_amount_due")
    credit_to_balance = _positive_int(credit_to_balance, field="credit_to_balance")
    refund = _positive_int(refund, field="refund")

    customers_lock_balance(customer_ids=[invoice.customer_id])
    invoice = invoice_qs_for_update().select_related("brand", "customer").get(pk=invoice.pk)
    if invoice.status not in CREDITABLE_STATUSES:
        if invoice.status == Status.DRAFT:
            message = gettext(
                "Invoice %(number)s is %(status)s: only open or paid invoices take credit notes "
                "(edit the draft instead)."
            )
        else:
            message = gettext("Invoice %(number)s is %(status)s: only open or paid invoices take credit notes.")
        raise CreditNoteError(
            message % {"number": invoice.number or f"#{invoice.pk}", "status": invoice.get_status_display()}
        )
    preview = credit_note_preview(invoice=invoice, lines=lines, amount=amount)
    room = invoice_credit_room(invoice=invoice, exclude_refund_id=refund_id)
    if preview.total > room.creditable:
        money = {
            "number": invoice.number,
            "left": format_money(room.creditable, invoice.currency),
            "total": format_money(invoice.total, invoice.currency),
            "credited": format_money(room.credited, invoice.currency),
            "held": format_money(room.held, invoice.currency),
            "amount": format_money(preview.total, invoice.currency),
        }
        if room.held:
            message = gettext(
                "Invoice %(number)s has %(left)s left to credit (its total %(total)s minus %(credited)s already "
                "credited, %(held)s held by refunds in progress); %(amount)s is too much."
            )
        else:
            message = gettext(
                "Invoice %(number)s has %(left)s left to credit (its total %(total)s minus %(credited)s already "
                "credited); %(amount)s is too much."
            )
        raise CreditNoteError(message % money)
    if preview.total <= 0:
        raise CreditNoteError(gettext("A credit note credits a positive total."))

    if reduce_amount_due == credit_to_balance == refund == 0:
        reduce_amount_due = min(preview.total, invoice.amount_remaining)
        credit_to_balance = preview.total - reduce_amount_due
    allocated = reduce_amount_due + credit_to_balance + refund
    if allocated != preview.total:
        raise CreditNoteError(
            gettext(
                "The credit note totals %(total)s (tax included) but reduce_amount_due + credit_to_balance + "
                "refund = %(allocated)s; they must add up to the total."
            )
            % {
                "total": format_money(preview.total, invoice.currency),
                "allocated": format_money(allocated, invoice.currency),
            }
        )
    if reduce_amount_due > invoice.amount_remaining:
        raise CreditNoteError(
            gettext("Only %(due)s remain due on invoice %(number)s; the amount due cannot be reduced by %(amount)s.")
            % {
                "due": format_money(invoice.amount_remaining, invoice.currency),
                "number": invoice.number,
                "amount": format_money(reduce_amount_due, invoice.currency),
            }
        )
    if refund > room.refundable:
        raise CreditNoteError(
            gettext(
                "%(refundable)s of invoice %(number)s was paid and not refunded yet; %(amount)s cannot be refunded."
            )
            % {
                "refundable": format_money(room.refundable, invoice.currency),
                "number": invoice.number,
                "amount": format_money(refund, invoice.currency),
            }
        )
    return _Checked(
        invoice=invoice,
        preview=preview,
        reduce_amount_due=reduce_amount_due,
        credit_to_balance=credit_to_balance,
        refund=refund,
    )


def credit_note_refund_only(
    *,
    lines: Sequence[CreditLineInput] | None,
    amount: int | None,
    reduce_amount_due: int,
    credit_to_balance: int,
    refund: int,
) -> None:
    """A refund share is a credit note of its own, issued by the refund once the money has moved.

    The console's and the API's credit note forms call this when `refund` is given: the
    refund then goes through `billing.services.refunds` (gateway, four-eyes, fresh code).
    """
    if lines is not None or amount != refund or reduce_amount_due or credit_to_balance:
        raise CreditNoteError(
            gettext(
                "A refund is credited on its own: give the amount to refund as the amount credited (tax included), "
                "with nothing for the amount due or the balance, and issue any other credit as another credit note."
            )
        )


@transaction.atomic(savepoint=False)
def credit_note_refund_check(*, invoice: Invoice, amount: int, reason: str, refund_id: int | None = None) -> None:
    """Check, under the customer and invoice locks, that a refund of `amount` can have its credit note.

    The refunds service calls this before a refund is recorded and again before the
    gateway is called, so that no money leaves without its document. The locks are held
    until the caller's transaction ends.
    """
    _lock_and_check(
        invoice=invoice,
        lines=None,
        amount=amount,
        reduce_amount_due=0,
        credit_to_balance=0,
        refund=amount,
        reason=reason,
        refund_id=refund_id,
    )


@transaction.atomic(savepoint=False)
def credit_note_create(
    *,
    invoice: Invoice,
    lines: Sequence[CreditLineInput] | None = None,
    amount: int | None = None,
    reduce_amount_due: int = 0,
    credit_to_balance: int = 0,
    refund: int = 0,
    reason: str,
    memo: str = "",
    at: datetime | None = None,
    acting_user: ActingUser = None,
    refund_record: Refund | None = None,
) -> CreditNote:
    """Issue a credit note for an open or paid invoice (see the module docstring).

    A refund share (`refund`) is only issued by the refunds service for its executed
    `refund_record` (billing.Refund), after the gateway paid the money back: every other
    caller goes through `billing.services.refunds`, so that money moves, four-eyes and
    the fresh two-factor code apply, and what is left to refund has one rule.

    Locks the customer (balance), the invoice, then the credit-note series. The issue
    time is read from the billing clock under the series lock when `at` is None, and an
    `at` of the caller's never dates it before the series' last credit note (number order
    is date order, invoices/services/numbering.py).
    """
    if at is not None and at.tzinfo is None:
        raise CreditNoteError(
            f"`at` must be an aware datetime (UTC in the database), got {at!r}."
        )  # untranslated: programmer error (naive datetime)
    if at is not None:  # a backdated credit note may not land in a closed accounting period
        accounting_period_check_open(brand_id=invoice.brand_id, livemode=invoice.customer.livemode, at=at)
    if refund and refund_record is None:
        raise CreditNoteError(
            gettext(
                "A refund moves money: request it through the refunds (billing.services.refunds), which issue its "
                "credit note once the money is paid back."
            )
        )
    if refund_record is not None and (refund_record.invoice_id != invoice.pk or refund_record.amount != refund):
        raise CreditNoteError("The refund share must be the refund's amount, on the refund's invoice.")
    checked = _lock_and_check(
        invoice=invoice,
        lines=lines,
        amount=amount,
        reduce_amount_due=reduce_amount_due,
        credit_to_balance=credit_to_balance,
        refund=refund,
        reason=reason,
        refund_id=refund_record.pk if refund_record is not None else None,
    )
    invoice, preview = checked.invoice, checked.preview
    reduce_amount_due, credit_to_balance = checked.reduce_amount_due, checked.credit_to_balance

    brand, customer = invoice.brand, invoice.customer
    # Credit notes correct issued invoices only (checked above): number and date are set.
    assert invoice.number is not None and invoice.finalized_at is not None
    language = document_language(invoice.language)
    mentions = [
        credit_note_reference(
            invoice_number=invoice.number,
            invoice_date=local_date(invoice.finalized_at, brand.timezone),
            language=language,
        )
    ]
    # BR-FR-05: a credit note carries the payment mentions too (notes PMD, PMT, AAB).
    mentions += credit_note_payment_mentions(invoice_snapshot=invoice.issued_snapshot, brand=brand, language=language)
    vat_mention = invoice.issued_snapshot.get("vat_mention")
    if vat_mention:
        mentions.append({"key": vat_mention, "text": LEGAL_MENTIONS[vat_mention][language]})
    series = number_series_lock(
        brand=brand,
        kind=NumberSequence.Kind.CREDIT_NOTE,
        at=at,
        test_mode=customer_numbered_as_test(customer),
        now=lambda: clock.now(customer=customer),
    )
    at = series.issued_at
    [number] = series.numbers(1)
    credit_note = CreditNote(
        invoice=invoice,
        brand=brand,
        customer=customer,
        number=number,
        reason=reason,
        memo=memo,
        currency=invoice.currency,
        subtotal=preview.subtotal,
        tax_total=preview.tax_total,
        total=preview.total,
        reduced_amount_due=reduce_amount_due,
        credited_to_balance=credit_to_balance,
        refunded=refund,
        tax_breakdown=tax_breakdown_rows(preview.tax_breakdown),
        issued_snapshot={
            "seller": seller_in_language(seller_snapshot(brand), brand=brand, language=language),
            "buyer": buyer_snapshot(customer),
            "language": language,
            "issue_date": local_date(at, brand.timezone).isoformat(),
            "invoice": {
                "number": invoice.number,
                "issue_date": local_date(invoice.finalized_at, brand.timezone).isoformat(),
            },
            "vat_mention": vat_mention,
            "mentions": mentions,
        },
        issued_at=at,
        acting_user=acting_user if getattr(acting_user, "is_authenticated", False) else None,
    )
    credit_note.content_hash = credit_note_content_hash(credit_note=credit_note, lines=preview.lines)
    [(credit_note.chain_previous, credit_note.chain_hash)] = number_series_commit(
        series=series, content_hashes=[credit_note.content_hash]
    )
    credit_note.save()
    for line in preview.lines:
        line.credit_note = credit_note
    CreditNoteLine.objects.bulk_create(preview.lines)

    if credit_to_balance:
        BalanceTransaction.objects.create(
            customer=customer,
            currency=invoice.currency,
            amount=credit_to_balance,
            kind=BalanceTransaction.Kind.CREDIT_NOTE,
            description=document_text(
                invoice.language,
                _("Credit note %(credit_note)s for invoice %(number)s"),
                credit_note=number,
                number=invoice.number,
            ),
            invoice=invoice,
            credit_note=credit_note,
            created_at=at,
        )
    became_paid = False
    if reduce_amount_due:
        invoice.amount_remaining -= reduce_amount_due
        fields = ["amount_remaining", "updated_at"]
        if invoice.amount_remaining == 0 and invoice.status == Status.OPEN:
            assert_invoice_transition(invoice, Status.PAID)
            invoice.status = Status.PAID
            invoice.paid_at = at
            fields += ["status", "paid_at"]
            became_paid = True
        invoice.save(update_fields=fields)

    data = {
        "number": number,
        "invoice_id": invoice.pk,
        "invoice_number": invoice.number,
        "currency": invoice.currency,
        "total": credit_note.total,
        "reduced_amount_due": reduce_amount_due,
        "credited_to_balance": credit_to_balance,
        "refunded": refund,
        "reason": reason,
    }
    event_record(
        type="credit_note.created",
        object_type="credit_note",
        object_id=credit_note.pk,
        customer_id=customer.pk,
        occurred_at=at,
        data=data,
        acting_user=acting_user,
    )
    if became_paid:
        event_record(
            type="invoice.paid",
            object_type="invoice",
            object_id=invoice.pk,
            customer_id=customer.pk,
            occurred_at=at,
            data={"number": invoice.number, "status": invoice.status, "paid_by_credit_note": number},
            acting_user=acting_user,
        )
    credit_note_issued.fire(credit_note=credit_note)
    post_credit_note_issued(credit_note=credit_note)
    # The PDF (Factur-X, type 381) is rendered by a Celery task after commit, never inline.
    documents_render_on_commit(credit_note_ids=[credit_note.pk])
    return credit_note


def invoice_line_creditable(*, line: InvoiceLine, credited: int = 0) -> int:
    """What is left to credit on an invoice line (net of discount and tax), after `credited`."""
    return max(_line_net(line) - credited, 0)


def credit_amount_for_quantity(*, line: InvoiceLine, quantity: Decimal) -> int:
    """The net amount (tax excluded) crediting `quantity` of the line's units gives, rounded to
    minor units: the line's net amount in proportion to its quantity (all of it for its whole quantity)."""
    if not line.quantity or quantity <= 0:
        raise CreditNoteError(
            gettext("Credit a positive quantity of line '%(description)s', not %(quantity)s.")
            % {"description": line.description, "quantity": quantity}
        )
    if quantity >= line.quantity:
        return _line_net(line)
    return round_fraction(Fraction(_line_net(line)) * Fraction(quantity) / Fraction(line.quantity))
