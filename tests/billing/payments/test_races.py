"""Payment services that lock, raced by two threads on PostgreSQL (see tests/billing/services/test_races.py)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from billing.models import Payment, Refund, SandboxCharge, SandboxRefund
from billing.services import payments, refunds
from billing.services.payments import invoice_collect, payment_method_attach, payment_record_manual
from billing.services.refunds import RefundError, refund_approve, refund_request
from invoices.errors import PaymentError
from invoices.models import Invoice
from tests.billing.payments.conftest import VISA_OK, card
from tests.billing.services.test_races import errors_of, race, slowed

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def unpaid(postgres_only, subscribe):
    """An open invoice of a customer who then adds a card (nothing charged yet)."""
    subscription, invoice = subscribe(None)
    payment_method_attach(customer=subscription.customer, source=card(VISA_OK))
    return invoice


def test_two_collections_of_one_invoice_charge_once(unpaid, monkeypatch):
    slowed(monkeypatch, payments, "default_payment_method")

    race(lambda: invoice_collect(invoice=unpaid), lambda: invoice_collect(invoice=unpaid))

    unpaid.refresh_from_db()
    assert SandboxCharge.objects.count() == 1
    assert list(Payment.objects.values_list("status", flat=True)) == [Payment.Status.SUCCEEDED]
    assert unpaid.status == Invoice.Status.PAID and unpaid.amount_paid == 3480


def test_two_manual_payments_never_overpay(unpaid, monkeypatch, staff):
    slowed(monkeypatch, payments, "_lock_subscription_then_invoice")

    results = race(*[lambda: payment_record_manual(invoice=unpaid, amount=3000, method="cash", acting_user=staff)] * 2)

    unpaid.refresh_from_db()
    assert len(errors_of(results, PaymentError)) == 1
    assert unpaid.amount_paid == 3000


def test_two_approvers_execute_a_refund_once(unpaid, monkeypatch, staff_factory, settings):
    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 100
    invoice_collect(invoice=unpaid)
    alice, bruno, chloe = (staff_factory(username=name) for name in ("alice", "bruno", "chloe"))
    refund = refund_request(
        payment=Payment.objects.get(), amount=2000, reason="other", requested_by=alice, otp_verified_at=timezone.now()
    )
    slowed(monkeypatch, refunds, "_event")

    results = race(
        lambda: refund_approve(refund=refund, approver=bruno, otp_verified_at=timezone.now()),
        lambda: refund_approve(refund=refund, approver=chloe, otp_verified_at=timezone.now()),
    )

    assert len(errors_of(results, RefundError)) == 1
    assert SandboxRefund.objects.count() == 1
    assert Refund.objects.get().status == Refund.Status.EXECUTED
