"""Payment services that lock, raced by two threads on PostgreSQL (see tests/billing/services/test_races.py)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from billing.models import Payment, Refund, SandboxCharge, SandboxRefund
from billing.services import payments, refunds
from billing.services.payments import invoice_collect, payment_method_attach, payment_record_manual
from billing.services.refunds import RefundError, refund_approve, refund_request
from invoices.errors import PaymentError
from invoices.models import Invoice
from tests.billing.payments.conftest import DECLINED, VISA_OK, card
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


@pytest.mark.parametrize("number", [VISA_OK, DECLINED])
def test_the_collection_fast_path_and_the_hand_off_sweeper_racing_reach_the_gateway_once(
    postgres_only, subscribe, monkeypatch, number
):
    from billing.tasks import collect_invoices

    # given an issued invoice whose collection task is enqueued twice (on_commit, then the sweeper)
    subscription, invoice = subscribe(None)  # issued before the customer had a card: not charged
    payment_method_attach(customer=subscription.customer, source=card(number))
    # Both pass the "no attempt yet" check together; the second reaches the invoice's lock
    # only once the first has recorded its outcome (the worst case for a second charge).
    slowed(monkeypatch, payments, "default_payment_method")
    collect, entered = payments.invoice_collect, []

    def second_comes_late(**kwargs):
        entered.append(kwargs["invoice"].pk)
        if len(entered) > 1:
            time.sleep(1)
        return collect(**kwargs)

    monkeypatch.setattr(payments, "invoice_collect", second_comes_late)

    # when both tasks run at the same time
    results = race(lambda: collect_invoices([invoice.pk]), lambda: collect_invoices([invoice.pk]))

    # then one attempt reached the gateway, whatever its outcome (no second try outside dunning)
    assert not [result for result in results if isinstance(result, Exception)], results
    assert SandboxCharge.objects.count() == 1
    assert Payment.objects.filter(invoice=invoice).count() == 1
    assert len(entered) == 2, "both tasks must have got past the pre-check for this test to mean anything"
