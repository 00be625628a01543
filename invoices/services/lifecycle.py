"""What happens to an issued invoice: payments, write-off, void (invoices/states.py).

Each service locks the invoice, checks the transition, writes the row and records a
domain event in the same transaction. Amounts stay frozen; only the status, the
payment columns and their timestamps move.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.wallets.consumption import credits_return
from config import mfa
from config.audit.services import audit_record
from config.events.log import event_record
from config.formatting import format_money
from config.hooks import Hook
from config.types import ActingUser, JsonDict
from invoices.errors import FreshVerificationRequired, InsufficientBalance, InvoiceError, PaymentError
from invoices.ledger.postings import post_invoice_uncollectible, post_invoice_voided
from invoices.locks import customers_lock_balance, invoice_qs_for_update
from invoices.models import BalanceTransaction, CreditNote, Invoice
from invoices.selectors import customer_balance
from invoices.services.documents import document_text
from invoices.states import PAYABLE_STATUSES, assert_invoice_transition

# Fired when an invoice is voided, in the voiding transaction, with `invoice`: billing gives
# back the carry-over amounts its discounts had used (docs/billing.md "Carry-over").
invoice_voided = Hook("invoices.invoice_voided", required=True)

Status = Invoice.Status


def _check_aware(at: datetime) -> None:
    if at is None or at.tzinfo is None:
        raise InvoiceError(
            f"`at` must be an aware datetime (UTC in the database), got {at!r}."
        )  # untranslated: programmer error (naive datetime)


def _event(type: str, invoice: Invoice, at: datetime, acting_user: ActingUser, **data: Any) -> None:
    event_record(
        type=type,
        object_type="invoice",
        object_id=invoice.pk,
        customer_id=invoice.customer_id,
        occurred_at=at,
        data={
            "number": invoice.number,
            "status": invoice.status,
            "currency": invoice.currency,
            "amount_paid": invoice.amount_paid,
            "amount_remaining": invoice.amount_remaining,
            **data,
        },
        acting_user=acting_user,
    )


@transaction.atomic(savepoint=False)
def invoice_void(*, invoice: Invoice, at: datetime, acting_user: ActingUser = None, reason: str = "") -> Invoice:
    """Cancel an open or uncollectible invoice. It keeps its number (the series stays
    gapless) and its amounts; customer credit it used goes back to the balance.

    An invoice that took payments or has credit notes is not voided: correct it with a
    credit note (and a refund) so every movement stays on record.
    """
    _check_aware(at)
    customers_lock_balance(customer_ids=[invoice.customer_id])
    invoice = invoice_qs_for_update().get(pk=invoice.pk)
    assert_invoice_transition(invoice, Status.VOID)
    if invoice.amount_paid:
        raise InvoiceError(
            gettext(
                "Invoice %(number)s has received %(amount_paid)s in payments and cannot be voided; "
                "issue a credit note with a refund instead."
            )
            % {"number": invoice.number, "amount_paid": format_money(invoice.amount_paid, invoice.currency)}
        )
    if CreditNote.objects.filter(invoice=invoice, status=CreditNote.Status.ISSUED).exists():
        raise InvoiceError(
            gettext("Invoice %(number)s has credit notes and cannot be voided; credit what is left instead.")
            % {"number": invoice.number}
        )
    returned = invoice.starting_balance_applied
    if returned < 0 and customer_balance(customer_id=invoice.customer_id, currency=invoice.currency) + returned < 0:
        raise InsufficientBalance(
            gettext(
                "Invoice %(number)s credited %(returned)s to the customer's balance and that credit "
                "has been used; it cannot be voided."
            )
            % {"number": invoice.number, "returned": format_money(-returned, invoice.currency)}
        )
    invoice.status = Status.VOID
    invoice.voided_at = at
    invoice.amount_remaining = 0
    if reason:
        invoice.custom_fields = {**invoice.custom_fields, "void_reason": reason}
    invoice.save(update_fields=["status", "voided_at", "amount_remaining", "custom_fields", "updated_at"])
    if returned:
        BalanceTransaction.objects.create(
            customer_id=invoice.customer_id,
            currency=invoice.currency,
            amount=returned,
            kind=BalanceTransaction.Kind.INVOICE_VOIDED,
            description=document_text(
                invoice.language, _("Returned from voided invoice %(number)s"), number=invoice.number
            ),
            invoice=invoice,
            created_at=at,
        )
    invoice_voided.fire(invoice=invoice)
    # Prepaid credits it consumed go back to their grants (wallets, docs/billing.md "Prepaid credits").
    credits_returned = credits_return(invoice=invoice, at=at) if invoice.credits_applied else 0
    # The ledger last: its journal sequence lock ranks after everything a movement locks.
    post_invoice_voided(invoice=invoice, at=at)
    _event(
        "invoice.voided",
        invoice,
        at,
        acting_user,
        reason=reason,
        balance_returned=returned,
        **({"credits_returned": credits_returned} if credits_returned else {}),
    )
    return invoice


@transaction.atomic(savepoint=False)
def invoice_mark_uncollectible(
    *,
    invoice: Invoice,
    at: datetime,
    acting_user: ActingUser = None,
    otp_verified_at: datetime | None = None,
    automatic: bool = False,
) -> Invoice:
    """Write an open invoice off. It can still be paid or voided.

    A write-off is a sensitive operation (docs/security.md): a person needs a second factor
    verified within TARIF_MFA_FRESH_MINUTES (`otp_verified_at`, from config.mfa). Only
    dunning's configured outcome (`automatic=True`, no person involved) goes without one.
    """
    _check_aware(at)
    if not automatic and not mfa.is_fresh(otp_verified_at):
        raise FreshVerificationRequired(
            _("Writing an invoice off needs a fresh two-factor code (within the last %(minutes)d minutes).")
            % {"minutes": mfa.fresh_minutes()}
        )
    invoice = invoice_qs_for_update().get(pk=invoice.pk)
    assert_invoice_transition(invoice, Status.UNCOLLECTIBLE)
    invoice.status = Status.UNCOLLECTIBLE
    invoice.save(update_fields=["status", "updated_at"])
    post_invoice_uncollectible(invoice=invoice, at=at)
    proof: JsonDict = (
        {"automatic": True}
        if automatic or otp_verified_at is None
        else {"second_factor_verified_at": otp_verified_at.isoformat()}
    )
    _event("invoice.marked_uncollectible", invoice, at, acting_user, **proof)
    if not automatic:
        audit_record(
            actor=acting_user,
            action="invoice.write_off",
            obj=invoice,
            extra=proof,
        )
    return invoice


@transaction.atomic(savepoint=False)
def invoice_record_payment(*, invoice: Invoice, amount: int, at: datetime, acting_user: ActingUser = None) -> Invoice:
    """Record `amount` (minor units) received for an open or uncollectible invoice.

    Partial payments are fine; the invoice is paid when nothing remains. Paying more
    than what remains is refused here (the payments issue decides what an overpayment
    becomes).
    """
    _check_aware(at)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise PaymentError(
            gettext("A payment is a positive number of minor units, not %(amount)r.") % {"amount": amount}
        )
    invoice = invoice_qs_for_update().get(pk=invoice.pk)
    if invoice.status not in PAYABLE_STATUSES:
        raise PaymentError(
            gettext("Invoice %(number)s is %(status)s: it takes no payment.")
            % {"number": invoice.number or f"#{invoice.pk}", "status": invoice.get_status_display()}
        )
    if amount > invoice.amount_remaining:
        raise PaymentError(
            gettext("A payment of %(amount)s exceeds the %(due)s that remain due on invoice %(number)s.")
            % {
                "amount": format_money(amount, invoice.currency),
                "due": format_money(invoice.amount_remaining, invoice.currency),
                "number": invoice.number,
            }
        )
    invoice.amount_paid += amount
    invoice.amount_remaining -= amount
    fields = ["amount_paid", "amount_remaining", "updated_at"]
    if invoice.amount_remaining == 0:
        assert_invoice_transition(invoice, Status.PAID)
        invoice.status = Status.PAID
        invoice.paid_at = at
        fields += ["status", "paid_at"]
    invoice.save(update_fields=fields)
    _event(
        "invoice.paid" if invoice.status == Status.PAID else "invoice.payment_recorded",
        invoice,
        at,
        acting_user,
        amount=amount,
    )
    return invoice
