"""Refunds: full or partial, through the payment's gateway, each with its credit note.

    requested ──approve (another staff member, fresh OTP)──> approved ──execute──> executed
        │                                                                  └──> failed
        └──reject──> rejected

Every path that pays money back comes here: the payment's refund form, a credit note's
refund share (console credit-note form, API credit notes: `refund_request_for_invoice`)
and the refunds API. What is left to refund has one rule, `refundable_amount`: the
payment's amount minus every refund requested, approved or executed.

Four-eyes on the cumulative amount: once what the payment has had refunded in all (this
request included) is above TARIF_REFUND_APPROVAL_THRESHOLD (minor units), the request
waits for a second staff member and the requester must have re-verified an OTP code
within TARIF_MFA_FRESH_MINUTES (config/mfa.py); at or below it, it is approved and executed at
once. `refund_execute` checks the approval again right before calling the gateway, so
no code path can send an unapproved refund above the threshold.

Locks: customer (balance) -> invoice -> payment, as the payments service. No external
call under a lock: record the request and commit; check again that the credit note can
be written and commit (or fail the refund before any money leaves); call the gateway
(idempotency key `refund:<pk>`) with no transaction open; record its reference; then in
one transaction the credit note (`credit_note_create(..., refund=amount,
refund_record=refund)`), the payment's refunded amount and the refund's status. A crash
in between is resumed by executing again. While a refund is in flight its amount is held
on the invoice (no other credit note can take it). Each step is an audited DomainEvent
with the acting user.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

from billing.locks import payment_qs_for_update, refund_qs_for_update
from billing.models import Payment, Refund
from billing.payments.gateway import GatewayError
from billing.payments.registry import MANUAL, gateway_for
from config import clock, mfa
from config.errors import DomainError
from config.events.log import event_record
from config.formatting import format_money
from config.types import ActingUser
from customers.locks import customers_lock_balance
from invoices.errors import CreditNoteError
from invoices.ledger.postings import post_refund
from invoices.locks import invoice_qs_for_update
from invoices.models import CreditNote, Invoice
from invoices.services.credit_notes import credit_note_create, credit_note_refund_check, invoice_credit_room


class RefundError(DomainError):
    """A refund Tarif refuses; the message says why."""

    code = "refund"


class FourEyesViolation(RefundError):
    """The requester tried to approve their own refund."""

    code = "four_eyes"
    http_status = 403


class StaleOtpVerification(RefundError):
    """The staff member has not re-verified an OTP code recently enough."""

    code = "approval_required"
    http_status = 403


# Refunds that have left or are leaving: they count against what a payment can still refund.
REFUND_DECLINED = "refund_declined"  # Refund.failure_code: the gateway answered "failed"
LEAVING_STATUSES = (Refund.Status.REQUESTED, Refund.Status.APPROVED, Refund.Status.EXECUTED)


def approval_threshold() -> int:
    return int(getattr(settings, "TARIF_REFUND_APPROVAL_THRESHOLD", 10000))


def _check_fresh_otp(otp_verified_at: datetime | None, *, who: str) -> None:
    if not mfa.is_fresh(otp_verified_at):
        if who == "approver":
            message = gettext(
                "The approver must confirm a fresh two-factor code (within the last %(minutes)s minutes)."
            )
        else:
            message = gettext(
                "The requester must confirm a fresh two-factor code (within the last %(minutes)s minutes)."
            )
        raise StaleOtpVerification(message % {"minutes": mfa.fresh_minutes()})


def _event(refund: Refund, type: str, acting_user: ActingUser, **data: Any) -> None:
    event_record(
        type=type,
        object_type="refund",
        object_id=refund.pk,
        customer_id=refund.payment.customer_id,
        occurred_at=clock.system_now(),
        data={
            "payment": refund.payment_id,
            "invoice": refund.invoice_id,
            "amount": refund.amount,
            "currency": refund.currency,
            "status": refund.status,
            "requested_by": refund.requested_by_id,
            "decided_by": refund.decided_by_id,
            **data,
        },
        acting_user=acting_user,
    )


def _refunded_or_leaving(*, payment_id: int) -> int:
    leaving = Refund.objects.filter(payment_id=payment_id, status__in=LEAVING_STATUSES)
    return int(leaving.aggregate(total=Sum("amount"))["total"] or 0)


def refundable_amount(*, payment: Payment) -> int:
    """The one rule: what is left to refund through the payment.

    The payment's amount minus every refund that has left or is leaving (requested,
    approved or executed), whichever path asked for it: the payment's refund form, a
    credit note's refund share, the API. And never more than its invoice can still
    refund (invoices.services.credit_notes.invoice_credit_room): every refund issues a
    credit note, so an invoice paid 100 and credited 30 to the balance refunds at most
    70. The console's forms, the API and the services all read this; services read it
    under the payment's row lock.
    """
    if payment.status != Payment.Status.SUCCEEDED:
        return 0
    left = max(payment.amount - _refunded_or_leaving(payment_id=payment.pk), 0)
    if left == 0:
        return 0
    # The invoice as stored now: a payment's cached invoice may predate the payment itself.
    invoice = Invoice.objects.only("pk", "total", "amount_paid").get(pk=payment.invoice_id)
    return min(left, invoice_credit_room(invoice=invoice).refundable)


def invoice_refundable_amount(*, invoice: Invoice) -> int:
    """The most a credit note's refund share can be: what is left on the invoice's best payment.

    A refund goes back through one payment (its gateway charge), so a credit note's
    refund share is at most what is left to refund on one of the invoice's payments.
    """
    payments = Payment.objects.filter(invoice_id=invoice.pk, status=Payment.Status.SUCCEEDED)
    return max((refundable_amount(payment=payment) for payment in payments), default=0)


def _check_request(*, amount: int, reason: str, requested_by: ActingUser) -> None:
    if reason not in CreditNote.Reason.values:
        raise RefundError(
            gettext("Unknown refund reason %(reason)r; expected one of %(reasons)s.")
            % {"reason": reason, "reasons": ", ".join(CreditNote.Reason.values)}
        )
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise RefundError(gettext("A refund is a positive number of minor units, not %(amount)r.") % {"amount": amount})
    if requested_by is None or not getattr(requested_by, "is_staff", False):
        raise RefundError(gettext("Only staff members can request refunds."))


def _too_much(*, left: int, amount: int, currency: str, one_of_many: bool) -> str:
    # Shown next to the console's amount field and in the API's problem: money as people write it.
    values = {"left": format_money(left, currency), "amount": format_money(amount, currency)}
    if one_of_many:
        return (
            gettext("At most %(left)s can be refunded through one payment of this invoice; %(amount)s is too much.")
            % values
        )
    return gettext("%(left)s of this payment can still be refunded; %(amount)s is too much.") % values


def _record_request(
    *,
    invoice_id: int,
    payment_id: int | None,
    amount: int,
    reason: str,
    memo: str,
    requested_by: ActingUser,
    otp_verified_at: datetime | None,
) -> Refund:
    """Lock customer -> invoice -> payment(s), check everything, record the request, commit.

    Durable: the locks are released before anyone calls the gateway.
    """
    with transaction.atomic(durable=True):
        invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
        try:
            # Locks the customer then the invoice; the refund's credit note must be issuable
            # (checked now, and again before the gateway).
            credit_note_refund_check(invoice=invoice, amount=amount, reason=reason)
        except CreditNoteError as error:
            raise RefundError(str(error)) from error
        payments = payment_qs_for_update().filter(invoice_id=invoice_id, status=Payment.Status.SUCCEEDED)
        if payment_id is not None:
            payments = payments.filter(pk=payment_id)
        left_by_payment = [(refundable_amount(payment=payment), payment.pk, payment) for payment in payments]
        if not left_by_payment:
            raise RefundError(gettext("Only a succeeded payment can be refunded."))
        # The payment with the most left (the latest on a tie): the one a credit note's share goes through.
        left, _pk, locked = max(left_by_payment, key=lambda row: row[:2])
        if amount > left:
            raise RefundError(
                _too_much(left=left, amount=amount, currency=locked.currency, one_of_many=payment_id is None)
            )
        # Four-eyes on what the payment has had refunded in all, not on each refund: two small
        # refunds that add up to more than the threshold need a second person for the second one.
        cumulative = _refunded_or_leaving(payment_id=locked.pk) + amount
        needs_approval = cumulative > approval_threshold()
        if needs_approval:
            _check_fresh_otp(otp_verified_at, who="requester")
        refund = Refund.objects.create(
            payment=locked,
            invoice_id=locked.invoice_id,
            amount=amount,
            currency=locked.currency,
            reason=reason,
            memo=memo,
            needs_approval=needs_approval,
            requested_by=requested_by,
            requested_at=clock.system_now(),
        )
        _event(refund, "refund.requested", requested_by, threshold=approval_threshold(), cumulative=cumulative)
        if not needs_approval:
            refund.status = Refund.Status.APPROVED
            refund.save(update_fields=["status"])
    return refund


def refund_request(
    *,
    payment: Payment,
    amount: int,
    reason: str,
    requested_by: ActingUser,
    otp_verified_at: datetime | None,
    memo: str = "",
) -> Refund:
    """Ask for a refund of `amount` on a succeeded payment.

    When what the payment has had refunded in all (this one included) stays at or below
    the threshold, it is executed at once; above it, it waits for a second staff member.
    """
    _check_request(amount=amount, reason=reason, requested_by=requested_by)
    # Checked again under the locks; here for the clearer message.
    if payment.status != Payment.Status.SUCCEEDED:
        raise RefundError(gettext("Only a succeeded payment can be refunded."))
    left = refundable_amount(payment=payment)
    if amount > left:
        raise RefundError(_too_much(left=left, amount=amount, currency=payment.currency, one_of_many=False))
    refund = _record_request(
        invoice_id=payment.invoice_id,
        payment_id=payment.pk,
        amount=amount,
        reason=reason,
        memo=memo,
        requested_by=requested_by,
        otp_verified_at=otp_verified_at,
    )
    if refund.needs_approval:
        return refund
    return refund_execute(refund=refund, acting_user=requested_by)


def refund_request_for_invoice(
    *,
    invoice: Invoice,
    amount: int,
    reason: str,
    requested_by: ActingUser,
    otp_verified_at: datetime | None,
    memo: str = "",
) -> Refund:
    """A credit note's refund share: the same refund, on the invoice's payment with the most left.

    The console's credit note form and the API's credit notes call this: the money goes
    back through the gateway, the threshold and the fresh code apply as for any refund,
    and the credit note is issued by the refund once the money is paid back.
    """
    _check_request(amount=amount, reason=reason, requested_by=requested_by)
    refund = _record_request(
        invoice_id=invoice.pk,
        payment_id=None,
        amount=amount,
        reason=reason,
        memo=memo,
        requested_by=requested_by,
        otp_verified_at=otp_verified_at,
    )
    if refund.needs_approval:
        return refund
    return refund_execute(refund=refund, acting_user=requested_by)


def refund_approve(*, refund: Refund, approver: ActingUser, otp_verified_at: datetime | None) -> Refund:
    """A second staff member approves (with their own fresh OTP); the refund is then executed."""
    if approver is None or not getattr(approver, "is_staff", False):
        raise RefundError(gettext("Only staff members can approve refunds."))
    _check_fresh_otp(otp_verified_at, who="approver")
    with transaction.atomic():
        locked = refund_qs_for_update().select_related("payment").get(pk=refund.pk)
        if locked.requested_by_id == approver.pk:
            raise FourEyesViolation(
                gettext("A refund must be approved by someone other than the staff member who asked for it.")
            )
        if locked.status != Refund.Status.REQUESTED:
            raise RefundError(
                gettext("This refund is %(status)s; only a pending request can be approved.")
                % {"status": locked.get_status_display()}
            )
        locked.status = Refund.Status.APPROVED
        locked.decided_by = approver
        locked.decided_at = clock.system_now()
        locked.save(update_fields=["status", "decided_by", "decided_at"])
        _event(locked, "refund.approved", approver)
    return refund_execute(refund=locked, acting_user=approver)


def refund_reject(*, refund: Refund, approver: ActingUser, note: str = "") -> Refund:
    if approver is None or not getattr(approver, "is_staff", False):
        raise RefundError(gettext("Only staff members can reject refunds."))
    with transaction.atomic():
        locked = refund_qs_for_update().select_related("payment").get(pk=refund.pk)
        if locked.status != Refund.Status.REQUESTED:
            raise RefundError(
                gettext("This refund is %(status)s; only a pending request can be rejected.")
                % {"status": locked.get_status_display()}
            )
        locked.status = Refund.Status.REJECTED
        locked.decided_by = approver
        locked.decided_at = clock.system_now()
        locked.decision_note = note[:300]
        locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        _event(locked, "refund.rejected", approver, note=note)
    return locked


def _approved(refund: Refund) -> bool:
    if refund.status != Refund.Status.APPROVED:
        return False
    if refund.amount > approval_threshold() or refund.needs_approval:
        return refund.decided_by_id is not None and refund.decided_by_id != refund.requested_by_id
    return True


def refund_execute(*, refund: Refund, acting_user: ActingUser = None) -> Refund:
    """Send an approved refund to the gateway, then issue its credit note.

    Check (under the customer and invoice locks) that the credit note can be written,
    commit; call the gateway with no transaction open; record its answer; then issue the
    credit note. A refund whose credit note could not be written is failed before any
    money leaves.
    """
    refund = Refund.objects.select_related("payment", "invoice").get(pk=refund.pk)
    if refund.status == Refund.Status.EXECUTED:
        return refund
    if not _approved(refund):
        raise RefundError(gettext("This refund is not approved; it cannot be sent to the gateway."))
    if not refund.gateway_reference:  # not sent yet (a reference means the money already left)
        try:
            # A failure is stored in English (Refund.failure_code): the messages are raised in English.
            with transaction.atomic(durable=True), translation.override("en"):
                credit_note_refund_check(
                    invoice=refund.invoice, amount=refund.amount, reason=refund.reason, refund_id=refund.pk
                )
        except CreditNoteError as error:
            return _refund_failed(refund, error.problem_code, error.message_text(), acting_user)
    payment = refund.payment
    reference = refund.gateway_reference
    if payment.gateway != MANUAL and not reference:
        try:
            with translation.override("en"):
                result = gateway_for(payment.gateway, livemode=payment.customer.livemode).refund(
                    charge_reference=payment.gateway_reference,
                    amount=refund.amount,
                    currency=refund.currency,
                    idempotency_key=refund.idempotency_key,
                )
        except GatewayError as error:
            return _refund_failed(refund, error.problem_code, error.message_text(), acting_user)
        if result.status == "failed":
            return _refund_failed(
                refund, REFUND_DECLINED, result.message or gettext_noop("The gateway refused the refund."), acting_user
            )
        reference = result.reference
        # Record the outcome first: the money has left, whatever happens to the document next.
        with transaction.atomic(durable=True):
            Refund.objects.filter(pk=refund.pk, status=Refund.Status.APPROVED).update(gateway_reference=reference)
    return _refund_document(refund=refund, reference=reference, acting_user=acting_user)


def _refund_document(*, refund: Refund, reference: str, acting_user: ActingUser) -> Refund:
    at = clock.now(customer=refund.invoice.customer)
    with transaction.atomic(durable=True):
        # The one order: customer, invoice, then the refund, before the credit note takes
        # the number series (last).
        customers_lock_balance(customer_ids=[refund.invoice.customer_id])
        list(invoice_qs_for_update().filter(pk=refund.invoice_id).values_list("pk", flat=True))
        locked = refund_qs_for_update().select_related("payment").get(pk=refund.pk)
        if locked.status == Refund.Status.EXECUTED:  # a concurrent execution won
            raise RefundError(gettext("This refund was executed concurrently."))
        credit_note = credit_note_create(
            invoice=refund.invoice,
            amount=refund.amount,
            refund=refund.amount,
            reason=refund.reason,
            memo=refund.memo,
            at=at,
            acting_user=acting_user,
            refund_record=refund,
        )
        locked.status = Refund.Status.EXECUTED
        locked.credit_note = credit_note
        locked.gateway_reference = reference
        locked.executed_at = at
        locked.save(update_fields=["status", "credit_note", "gateway_reference", "executed_at"])
        Payment.objects.filter(pk=refund.payment_id).update(
            amount_refunded=F("amount_refunded") + refund.amount, updated_at=clock.system_now()
        )
        post_refund(refund=locked)
        _event(locked, "refund.executed", acting_user, credit_note=credit_note.number, gateway_reference=reference)
    return locked


def _refund_failed(refund: Refund, code: str, message: str, acting_user: ActingUser) -> Refund:
    """Record the failure: `code` stable, `message` in English (the caller's)."""
    with transaction.atomic():
        locked = refund_qs_for_update().select_related("payment").get(pk=refund.pk)
        if locked.status != Refund.Status.APPROVED or locked.gateway_reference:
            return locked  # decided elsewhere meanwhile, or the money already left: never fail it
        locked.status = Refund.Status.FAILED
        locked.failure_code = code[:64]
        locked.failure_message = message[:300]
        locked.save(update_fields=["status", "failure_code", "failure_message"])
        _event(locked, "refund.failed", acting_user, code=code, message=message)
    return locked
