"""Refunds: full or partial, through the payment's gateway, each with its credit note.

    requested ──approve (another staff member, fresh OTP)──> approved ──execute──> executed
        │                                                                  └──> failed
        └──reject──> rejected

Above TARIF_REFUND_APPROVAL_THRESHOLD (minor units) a request waits for a second staff
member (four-eyes) and the requester must have re-verified an OTP code within
TARIF_REFUND_OTP_MAX_AGE_MINUTES; at or below it, it is approved and executed at once.
`refund_execute` checks the approval again right before calling the gateway, so no
code path can send an unapproved refund above the threshold.

Executing: the gateway refund (idempotency key `refund:<pk>`) first, then in one
transaction the credit note (`credit_note_create(..., refund=amount)`), the payment's
refunded amount and the refund's status. A crash in between is resumed by executing
again: the gateway returns the same refund. Each step is an audited DomainEvent with
the acting user.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from billing import clock
from billing.events import event_record
from billing.models import Payment, Refund
from billing.payments.gateway import GatewayError
from billing.payments.registry import MANUAL, gateway_for
from config.errors import DomainError
from invoices.models import CreditNote


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


def approval_threshold() -> int:
    return int(getattr(settings, "TARIF_REFUND_APPROVAL_THRESHOLD", 10000))


def _check_fresh_otp(otp_verified_at: datetime | None, *, who: str) -> None:
    # Wall-clock time: a test clock must not make an old verification look fresh.
    max_age = timedelta(minutes=int(getattr(settings, "TARIF_REFUND_OTP_MAX_AGE_MINUTES", 5)))
    now = timezone.now()
    if otp_verified_at is None or not (now - max_age <= otp_verified_at <= now + timedelta(seconds=5)):
        raise StaleOtpVerification(
            f"The {who} must confirm a fresh two-factor code (within the last {max_age.seconds // 60} minutes)."
        )


def _event(refund: Refund, type: str, acting_user: Any, **data: Any) -> None:
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


def refundable_amount(*, payment: Payment) -> int:
    """What is left to refund on the payment, counting requests still in flight."""
    in_flight = (
        Refund.objects.filter(
            payment=payment, status__in=[Refund.Status.REQUESTED, Refund.Status.APPROVED, Refund.Status.EXECUTED]
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )
    return payment.amount - in_flight


def refund_request(
    *,
    payment: Payment,
    amount: int,
    reason: str,
    requested_by: Any,
    otp_verified_at: datetime | None,
    memo: str = "",
) -> Refund:
    """Ask for a refund of `amount` on a succeeded payment; at or below the threshold it is executed at once."""
    if reason not in CreditNote.Reason.values:
        raise RefundError(f"Unknown refund reason {reason!r}; expected one of {', '.join(CreditNote.Reason.values)}.")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise RefundError(f"A refund is a positive number of minor units, not {amount!r}.")
    if requested_by is None or not getattr(requested_by, "is_staff", False):
        raise RefundError("Only staff members can request refunds.")
    needs_approval = amount > approval_threshold()
    if needs_approval:
        _check_fresh_otp(otp_verified_at, who="requester")
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.status != Payment.Status.SUCCEEDED:
            raise RefundError("Only a succeeded payment can be refunded.")
        left = refundable_amount(payment=locked)
        if amount > left:
            raise RefundError(
                f"{max(left, 0)} {locked.currency} of this payment can still be refunded; {amount} is too much."
            )
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
        _event(refund, "refund.requested", requested_by, threshold=approval_threshold())
        if not needs_approval:
            refund.status = Refund.Status.APPROVED
            refund.save(update_fields=["status"])
    if needs_approval:
        return refund
    return refund_execute(refund=refund, acting_user=requested_by)


def refund_approve(*, refund: Refund, approver: Any, otp_verified_at: datetime | None) -> Refund:
    """A second staff member approves (with their own fresh OTP); the refund is then executed."""
    if approver is None or not getattr(approver, "is_staff", False):
        raise RefundError("Only staff members can approve refunds.")
    _check_fresh_otp(otp_verified_at, who="approver")
    with transaction.atomic():
        locked = Refund.objects.select_for_update().select_related("payment").get(pk=refund.pk)
        if locked.requested_by_id == approver.pk:
            raise FourEyesViolation(
                "A refund must be approved by someone other than the staff member who asked for it."
            )
        if locked.status != Refund.Status.REQUESTED:
            raise RefundError(f"This refund is {locked.get_status_display()}; only a pending request can be approved.")
        locked.status = Refund.Status.APPROVED
        locked.decided_by = approver
        locked.decided_at = clock.system_now()
        locked.save(update_fields=["status", "decided_by", "decided_at"])
        _event(locked, "refund.approved", approver)
    return refund_execute(refund=locked, acting_user=approver)


def refund_reject(*, refund: Refund, approver: Any, note: str = "") -> Refund:
    if approver is None or not getattr(approver, "is_staff", False):
        raise RefundError("Only staff members can reject refunds.")
    with transaction.atomic():
        locked = Refund.objects.select_for_update().select_related("payment").get(pk=refund.pk)
        if locked.status != Refund.Status.REQUESTED:
            raise RefundError(f"This refund is {locked.get_status_display()}; only a pending request can be rejected.")
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


def refund_execute(*, refund: Refund, acting_user: Any = None) -> Refund:
    """Send an approved refund to the gateway, then issue its credit note."""
    from invoices.services.credit_notes import credit_note_create

    refund = Refund.objects.select_related("payment", "invoice").get(pk=refund.pk)
    if refund.status == Refund.Status.EXECUTED:
        return refund
    if not _approved(refund):
        raise RefundError("This refund is not approved; it cannot be sent to the gateway.")
    payment = refund.payment
    reference = ""
    if payment.gateway != MANUAL:
        try:
            result = gateway_for(payment.gateway).refund(
                charge_reference=payment.gateway_reference,
                amount=refund.amount,
                currency=refund.currency,
                idempotency_key=refund.idempotency_key,
            )
        except GatewayError as error:
            return _refund_failed(refund, str(error), acting_user)
        if result.status == "failed":
            return _refund_failed(refund, result.message or "The gateway refused the refund.", acting_user)
        reference = result.reference
    at = clock.now(customer=refund.invoice.customer)
    with transaction.atomic():
        credit_note = credit_note_create(
            invoice=refund.invoice,
            amount=refund.amount,
            refund=refund.amount,
            reason=refund.reason,
            memo=refund.memo,
            at=at,
            acting_user=acting_user,
        )
        locked = Refund.objects.select_for_update().select_related("payment").get(pk=refund.pk)
        if locked.status == Refund.Status.EXECUTED:  # a concurrent execution won; undo ours by failing
            raise RefundError("This refund was executed concurrently.")
        locked.status = Refund.Status.EXECUTED
        locked.credit_note = credit_note
        locked.gateway_reference = reference
        locked.executed_at = at
        locked.save(update_fields=["status", "credit_note", "gateway_reference", "executed_at"])
        Payment.objects.filter(pk=payment.pk).update(amount_refunded=F("amount_refunded") + refund.amount)
        _event(locked, "refund.executed", acting_user, credit_note=credit_note.number, gateway_reference=reference)
    return locked


def _refund_failed(refund: Refund, message: str, acting_user: Any) -> Refund:
    with transaction.atomic():
        locked = Refund.objects.select_for_update().select_related("payment").get(pk=refund.pk)
        locked.status = Refund.Status.FAILED
        locked.failure_message = message[:300]
        locked.save(update_fields=["status", "failure_message"])
        _event(locked, "refund.failed", acting_user, message=message)
    return locked
