"""A crash between Stripe's success and Tarif's database update never charges twice."""

from __future__ import annotations

import pytest
from djstripe import models as djstripe_models

from billing.models import Payment
from billing.payments.stripe import StripeGateway
from billing.services import payments as payments_service
from billing.services.dunning import invoices_collect
from billing.services.payments import invoice_collect
from invoices.models import Invoice
from tests.billing.payments.stripe_gateway.conftest import VISA_OK


def _charges_at_stripe(localstripe, customer) -> list[dict]:
    stripe_customer = djstripe_models.Customer.objects.get(subscriber=customer).id
    return localstripe.get("/v1/charges", {"customer": stripe_customer, "limit": 100})["data"]


def test_localstripe_ignores_idempotency_keys_so_tarif_cannot_rely_on_them(stripe_on, localstripe, make_customer):
    """Why the gateway keeps its own key -> PaymentIntent record: the same Idempotency-Key
    gives two intents on localstripe (Stripe itself would return the first for 24 hours)."""
    params = {"amount": 100, "currency": "eur", "payment_method_types": ["card"]}

    first = stripe_on.v1.payment_intents.create(params=params, options={"idempotency_key": "same-key"})
    second = stripe_on.v1.payment_intents.create(params=params, options={"idempotency_key": "same-key"})

    assert first.id != second.id


def test_crash_after_stripe_charged_then_retry_charges_once(stripe_on, localstripe, subscribe, monkeypatch):
    _, invoice = subscribe(VISA_OK)

    def crash(**kwargs):
        raise RuntimeError("worker killed after Stripe answered")

    with monkeypatch.context() as patched:
        patched.setattr(payments_service, "payment_record_outcome", crash)
        with pytest.raises(RuntimeError):
            invoice_collect(invoice=invoice)

    attempt = Payment.objects.get(invoice=invoice)
    assert attempt.status == Payment.Status.PENDING  # Tarif never learned the outcome
    assert len(_charges_at_stripe(localstripe, invoice.customer)) == 1  # but Stripe charged

    invoices_collect(invoice_ids=[invoice.pk])  # the retry (task redelivery, next run)

    invoice.refresh_from_db()
    attempt.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and invoice.amount_paid == invoice.total
    assert attempt.status == Payment.Status.SUCCEEDED and attempt.attempt == 1
    charges = _charges_at_stripe(localstripe, invoice.customer)
    assert [(charge["amount"], charge["status"]) for charge in charges] == [(invoice.total, "succeeded")]
    assert attempt.gateway_reference == charges[0]["payment_intent"]


def test_same_key_same_payment_intent_and_result(stripe_on, localstripe, make_customer):
    from billing.services.payments import payment_method_attach

    customer = make_customer()
    method = payment_method_attach(
        customer=customer, source={"card": {"number": VISA_OK, "exp_month": 1, "exp_year": 2031}}
    )
    gateway = StripeGateway()
    charge = dict(token=method.token, amount=1234, currency="EUR", customer_reference=str(customer.pk))

    first = gateway.charge(idempotency_key="invoice:999:attempt:1", **charge)
    again = gateway.charge(idempotency_key="invoice:999:attempt:1", **charge)
    other = gateway.charge(idempotency_key="invoice:999:attempt:2", **charge)

    assert first == again and first.status == "succeeded"
    assert other.reference != first.reference
    assert len(_charges_at_stripe(localstripe, customer)) == 2


def test_crash_between_creating_and_confirming_moves_no_money(stripe_on, localstripe, subscribe, monkeypatch):
    """The intent is recorded before it is confirmed; a crash there leaves it unconfirmed, and
    the retry confirms that same intent."""
    _, invoice = subscribe(VISA_OK)

    from stripe._payment_intent_service import PaymentIntentService

    original = PaymentIntentService.confirm

    def crash(self, *args, **kwargs):
        raise RuntimeError("worker killed before confirming")

    with monkeypatch.context() as patched:
        patched.setattr(PaymentIntentService, "confirm", crash)
        with pytest.raises(RuntimeError):
            invoice_collect(invoice=invoice)
    assert _charges_at_stripe(localstripe, invoice.customer) == []
    assert PaymentIntentService.confirm is original

    invoices_collect(invoice_ids=[invoice.pk])

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert len(_charges_at_stripe(localstripe, invoice.customer)) == 1
    assert (
        djstripe_models.PaymentIntent.objects.filter(
            stripe_data__metadata__tarif_idempotency_key=f"invoice:{invoice.pk}:attempt:1"
        ).count()
        == 1
    )


def test_network_failure_on_confirm_leaves_the_attempt_pending_and_the_retry_charges_once(
    stripe_on, localstripe, subscribe, monkeypatch
):
    import stripe
    from stripe._payment_intent_service import PaymentIntentService

    from billing.payments.gateway import GatewayUnavailable

    _, invoice = subscribe(VISA_OK)
    original = PaymentIntentService.confirm

    def confirmed_but_connection_lost(self, *args, **kwargs):
        original(self, *args, **kwargs)  # Stripe charges...
        raise stripe.APIConnectionError("connection reset")  # ...and the answer is lost

    with monkeypatch.context() as patched:
        patched.setattr(PaymentIntentService, "confirm", confirmed_but_connection_lost)
        with pytest.raises(GatewayUnavailable):
            invoice_collect(invoice=invoice)
    assert Payment.objects.get(invoice=invoice).status == Payment.Status.PENDING

    invoices_collect(invoice_ids=[invoice.pk])

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert len(_charges_at_stripe(localstripe, invoice.customer)) == 1
