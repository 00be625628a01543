"""Payment services that lock, raced by two threads on PostgreSQL (see tests/billing/services/test_races.py)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from billing.models import Payment, Refund, SandboxCharge, SandboxRefund
from billing.services import dunning, payments, refunds
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


def test_a_credit_note_refund_and_a_payment_refund_never_exceed_the_payment(unpaid, staff, staff_factory, settings):
    # given a 34.80 card payment, and two integrations refunding 20.00 each at the same moment,
    # one through a credit note's refund share, the other through the refunds endpoint
    from rest_framework.test import APIClient

    from config.api.keys import api_key_create
    from invoices.models import CreditNote

    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 10**9
    invoice_collect(invoice=unpaid)
    payment = Payment.objects.get()
    _key, raw = api_key_create(name="race", scope="read_write", mode="live", created_by=staff)

    def post(path, body):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client.post(path, body, format="json")

    results = race(
        lambda: post(
            "/api/v1/credit_notes",
            {"invoice": f"in_{unpaid.pk}", "amount": 2000, "refund": 2000, "reason": "duplicate"},
        ),
        lambda: post("/api/v1/refunds", {"payment": f"pay_{payment.pk}", "amount": 2000, "reason": "duplicate"}),
    )

    # then one is refused before the gateway, and every refund that left has its credit note
    assert sorted(response.status_code for response in results) == [201, 422], [r.content for r in results]
    assert [refund.amount for refund in SandboxRefund.objects.all()] == [2000]
    assert CreditNote.objects.get().refunded == 2000
    assert Refund.objects.get(status=Refund.Status.EXECUTED).credit_note is not None


def test_two_small_refunds_at_once_cannot_dodge_the_cumulative_threshold(unpaid, monkeypatch, staff_factory, settings):
    # given a 34.80 card payment and a 10.00 threshold on what a payment has had refunded in all
    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 1000
    invoice_collect(invoice=unpaid)
    payment = Payment.objects.get()
    alice, bruno = staff_factory(username="alice"), staff_factory(username="bruno")
    slowed(monkeypatch, refunds, "refundable_amount")

    # when two staff members each refund 8.00 at the same moment, without a fresh code
    results = race(
        lambda: refund_request(payment=payment, amount=800, reason="other", requested_by=alice, otp_verified_at=None),
        lambda: refund_request(payment=payment, amount=800, reason="other", requested_by=bruno, otp_verified_at=None),
    )

    # then the second one sees the first: 16.00 in all needs a fresh code and a second person
    assert len(errors_of(results, refunds.StaleOtpVerification)) == 1
    assert [refund.amount for refund in SandboxRefund.objects.all()] == [800]
    assert list(Refund.objects.values_list("status", flat=True)) == [Refund.Status.EXECUTED]


def test_two_refunds_at_once_never_exceed_the_payment(unpaid, monkeypatch, staff_factory, settings):
    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 10**9
    invoice_collect(invoice=unpaid)
    payment = Payment.objects.get()
    alice, bruno = staff_factory(username="alice"), staff_factory(username="bruno")
    slowed(monkeypatch, refunds, "refundable_amount")

    results = race(
        lambda: refund_request(payment=payment, amount=2000, reason="other", requested_by=alice, otp_verified_at=None),
        lambda: refund_request(payment=payment, amount=2000, reason="other", requested_by=bruno, otp_verified_at=None),
    )

    assert len(errors_of(results, RefundError)) == 1
    assert sum(refund.amount for refund in SandboxRefund.objects.all()) == 2000
    payment.refresh_from_db()
    assert payment.amount_refunded == 2000 and refunds.refundable_amount(payment=payment) == 1480


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
    slowed(monkeypatch, dunning, "default_payment_method")  # the collection task's pre-check (dunning)
    collect, entered = dunning.invoice_collect, []

    def second_comes_late(**kwargs):
        entered.append(kwargs["invoice"].pk)
        if len(entered) > 1:
            time.sleep(1)
        return collect(**kwargs)

    monkeypatch.setattr(dunning, "invoice_collect", second_comes_late)

    # when both tasks run at the same time
    results = race(lambda: collect_invoices([invoice.pk]), lambda: collect_invoices([invoice.pk]))

    # then one attempt reached the gateway, whatever its outcome (no second try outside dunning)
    assert not [result for result in results if isinstance(result, Exception)], results
    assert SandboxCharge.objects.count() == 1
    assert Payment.objects.filter(invoice=invoice).count() == 1
    assert len(entered) == 2, "both tasks must have got past the pre-check for this test to mean anything"
