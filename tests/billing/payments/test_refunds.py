"""Refunds through the original gateway, each with its credit note; four-eyes above the threshold."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import Payment, Refund, SandboxRefund
from billing.services.payments import payment_record_manual
from billing.services.refunds import (
    FourEyesViolation,
    RefundError,
    StaleOtpVerification,
    refund_approve,
    refund_execute,
    refund_reject,
    refund_request,
)
from config.events.models import DomainEvent
from invoices.models import CreditNote
from tests.billing.payments.conftest import VISA_OK

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(charged, settings):
    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 1000
    _, invoice = charged(VISA_OK)
    return Payment.objects.get(invoice=invoice, status=Payment.Status.SUCCEEDED)


@pytest.fixture
def alice(staff_factory):
    return staff_factory(username="alice")


@pytest.fixture
def bruno(staff_factory):
    return staff_factory(username="bruno")


def fresh() -> datetime:
    return timezone.now()


def test_a_small_refund_is_executed_at_once_with_its_credit_note(paid, alice):
    refund = refund_request(payment=paid, amount=800, reason="order_change", requested_by=alice, otp_verified_at=None)

    assert refund.status == Refund.Status.EXECUTED and not refund.needs_approval
    credit_note = refund.credit_note
    assert (credit_note.total, credit_note.refunded, credit_note.invoice_id) == (800, 800, paid.invoice_id)
    gateway_refund = SandboxRefund.objects.get()
    assert gateway_refund.charge.reference == paid.gateway_reference and gateway_refund.amount == 800
    paid.refresh_from_db()
    assert paid.amount_refunded == 800


def test_a_refund_above_the_threshold_waits_and_never_reaches_the_gateway(paid, alice):
    refund = refund_request(payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=fresh())

    assert refund.status == Refund.Status.REQUESTED and refund.needs_approval
    with pytest.raises(RefundError):
        refund_execute(refund=refund, acting_user=alice)
    assert SandboxRefund.objects.count() == 0
    assert not CreditNote.objects.exists()


def test_the_requester_cannot_approve_their_own_refund(paid, alice):
    refund = refund_request(payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=fresh())

    with pytest.raises(FourEyesViolation):
        refund_approve(refund=refund, approver=alice, otp_verified_at=fresh())

    refund.refresh_from_db()
    assert refund.status == Refund.Status.REQUESTED
    assert SandboxRefund.objects.count() == 0


def test_the_database_refuses_a_self_approved_refund(paid, alice):
    refund = refund_request(payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=fresh())

    with pytest.raises(IntegrityError), transaction.atomic():
        Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.APPROVED, decided_by=alice)


def test_a_second_staff_member_approves_and_the_refund_is_executed(paid, alice, bruno):
    refund = refund_request(payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=fresh())

    refund = refund_approve(refund=refund, approver=bruno, otp_verified_at=fresh())

    assert refund.status == Refund.Status.EXECUTED and refund.decided_by == bruno
    assert refund.credit_note.refunded == 3000
    audit = DomainEvent.objects.filter(object_type="refund").order_by("pk")
    assert [(event.type, event.acting_user) for event in audit] == [
        ("refund.requested", alice),
        ("refund.approved", bruno),
        ("refund.executed", bruno),
    ]


def test_a_rejection_is_audited_and_nothing_is_refunded(paid, alice, bruno):
    refund = refund_request(payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=fresh())

    refund = refund_reject(refund=refund, approver=bruno, note="Not eligible")

    assert refund.status == Refund.Status.REJECTED
    assert DomainEvent.objects.get(type="refund.rejected").acting_user == bruno
    assert SandboxRefund.objects.count() == 0
    with pytest.raises(RefundError):
        refund_approve(refund=refund, approver=bruno, otp_verified_at=fresh())


@pytest.mark.parametrize("otp_age", [None, timedelta(minutes=6)])
def test_a_large_refund_needs_a_fresh_otp_from_the_requester(paid, alice, otp_age):
    verified_at = None if otp_age is None else timezone.now() - otp_age

    with pytest.raises(StaleOtpVerification):
        refund_request(payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=verified_at)
    assert not Refund.objects.exists()


def test_the_approver_needs_a_fresh_otp_too(paid, alice, bruno):
    refund = refund_request(payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=fresh())

    with pytest.raises(StaleOtpVerification):
        refund_approve(refund=refund, approver=bruno, otp_verified_at=timezone.now() - timedelta(hours=1))
    assert SandboxRefund.objects.count() == 0


def test_more_than_was_paid_cannot_be_refunded(paid, alice, bruno):
    refund_request(payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=fresh())

    with pytest.raises(RefundError):
        refund_request(payment=paid, amount=481, reason="other", requested_by=bruno, otp_verified_at=fresh())


def test_a_crash_after_the_gateway_refund_is_resumed_without_refunding_twice(paid, alice, bruno, monkeypatch):
    refund = refund_request(payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=fresh())

    def crash(**kwargs):
        raise RuntimeError("killed before the credit note")

    with monkeypatch.context() as patch:
        patch.setattr("billing.services.refunds.credit_note_create", crash)
        with pytest.raises(RuntimeError):
            refund_approve(refund=refund, approver=bruno, otp_verified_at=fresh())
    refund.refresh_from_db()
    assert refund.status == Refund.Status.APPROVED and SandboxRefund.objects.count() == 1

    refund = refund_execute(refund=refund, acting_user=bruno)

    assert refund.status == Refund.Status.EXECUTED
    assert SandboxRefund.objects.count() == 1 and CreditNote.objects.count() == 1


def test_a_manual_payment_is_refunded_without_a_gateway(subscribe, alice):
    _, invoice = subscribe(None)
    payment = payment_record_manual(invoice=invoice, amount=3480, method="bank_transfer", acting_user=alice)

    refund = refund_request(payment=payment, amount=500, reason="other", requested_by=alice, otp_verified_at=None)

    assert refund.status == Refund.Status.EXECUTED and refund.credit_note.refunded == 500
    assert SandboxRefund.objects.count() == 0
