"""The signed Stripe webhook endpoint: verification, duplicates, and the events Tarif acts on."""

from __future__ import annotations

import json
import time

import pytest

from billing.models import DunningCase, GatewayEvent, Payment, PaymentMethod
from billing.services.payments import invoice_collect, payment_method_attach
from invoices.models import Invoice
from tests.billing.payments.stripe_gateway.conftest import (
    REQUIRES_ACTION,
    VISA_OK,
    WEBHOOK_SECRET,
    sign,
    stripe_card,
)

URL = "/payments/stripe/webhook/"
SEPA_FAILS = "DE62370400440532013001"  # localstripe: accepted, then fails asynchronously


def deliver(client, payload: bytes, signature: str | None = None):
    return client.post(
        URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature or sign(payload)
    )


def wait_for_event(localstripe, type: str, object_id: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in localstripe.events(type):
            if event["data"]["object"]["id"] == object_id:
                return event
        time.sleep(0.1)
    raise AssertionError(f"localstripe sent no {type} for {object_id}")


def authenticate(localstripe, intent_id: str) -> None:
    """What the customer's browser does after 3-D Secure succeeds."""
    intent = localstripe.get(f"/v1/payment_intents/{intent_id}")
    localstripe.post(
        f"/v1/payment_intents/{intent_id}/_authenticate", {"client_secret": intent["client_secret"], "success": "true"}
    )


@pytest.fixture
def waiting(stripe_on, localstripe, charged):
    """An invoice whose charge waits for 3-D Secure, and the customer then authenticated at Stripe."""
    _, invoice = charged(REQUIRES_ACTION)
    payment = Payment.objects.get(invoice=invoice)
    authenticate(localstripe, payment.gateway_reference)
    event = wait_for_event(localstripe, "payment_intent.succeeded", payment.gateway_reference)
    return invoice, payment, json.dumps(event).encode()


def test_a_valid_signature_is_accepted_and_the_authenticated_payment_settles_the_invoice(client, waiting):
    invoice, payment, payload = waiting

    response = deliver(client, payload)

    assert response.status_code == 200 and response.json() == {"received": True, "duplicate": False}
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and invoice.status == Invoice.Status.PAID
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.RECOVERED
    stored = GatewayEvent.objects.get(gateway="stripe")
    assert (stored.type, stored.processed_at is not None) == ("charge.succeeded", True)


@pytest.mark.parametrize(
    "signature",
    [
        "t=1,v1=0000",  # wrong digest, old timestamp
        None,  # signed with another secret (below)
        "",  # no header
        "stale",  # right secret, outside the tolerance
    ],
)
def test_an_invalid_signature_is_rejected_with_400_and_changes_nothing(client, waiting, signature):
    invoice, payment, payload = waiting
    if signature is None:
        signature = sign(payload, secret="whsec_someone_else")
    elif signature == "stale":
        signature = sign(payload, timestamp=int(time.time()) - 3600)
    elif signature == "":
        response = client.post(URL, data=payload, content_type="application/json")
        assert response.status_code == 400

    response = client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert not GatewayEvent.objects.exists()
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.status == Payment.Status.REQUIRES_ACTION and invoice.status == Invoice.Status.OPEN


def test_a_tampered_payload_is_rejected(client, waiting):
    invoice, payment, payload = waiting
    signature = sign(payload)
    tampered = payload.replace(b'"succeeded"', b'"succeeded" ', 1)

    assert deliver(client, tampered, signature).status_code == 400
    assert not GatewayEvent.objects.exists()


def test_the_same_event_delivered_twice_is_processed_once(client, waiting):
    invoice, payment, payload = waiting

    first, second = deliver(client, payload), deliver(client, payload)

    assert first.json()["duplicate"] is False and second.status_code == 200 and second.json()["duplicate"] is True
    assert GatewayEvent.objects.count() == 1
    invoice.refresh_from_db()
    assert invoice.amount_paid == invoice.total
    assert Payment.objects.filter(invoice=invoice, status=Payment.Status.SUCCEEDED).count() == 1


def test_only_post_is_accepted(client, stripe_on):
    assert client.get(URL).status_code == 405


def test_without_a_webhook_secret_nothing_is_accepted(client, waiting, settings):
    _, _, payload = waiting
    settings.STRIPE_WEBHOOK_SECRET = ""

    assert deliver(client, payload, sign(payload, secret=WEBHOOK_SECRET)).status_code == 400
    assert not GatewayEvent.objects.exists()


def test_a_sepa_debit_that_fails_later_enters_dunning_through_the_webhook(client, stripe_on, localstripe, subscribe):
    _, invoice = subscribe(None)
    payment_method_attach(customer=invoice.customer, source={"iban": SEPA_FAILS})
    payment = invoice_collect(invoice=invoice)
    assert payment.status == Payment.Status.PENDING  # Stripe: `processing`

    event = wait_for_event(localstripe, "payment_intent.payment_failed", payment.gateway_reference)
    assert deliver(client, json.dumps(event).encode()).status_code == 200

    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED and payment.decline_code
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.ACTIVE


def _pm_event(stripe_on, type: str, token: str, **card) -> bytes:
    payment_method = json.loads(str(stripe_on.v1.payment_methods.retrieve(token)))
    payment_method["card"].update(card)
    return json.dumps(
        {"id": f"evt_{type}_{token}", "object": "event", "type": type, "data": {"object": payment_method}}
    ).encode()


def test_payment_method_updated_brings_the_new_expiry(client, stripe_on, make_customer):
    method = payment_method_attach(customer=make_customer(), source=stripe_card(VISA_OK))

    payload = _pm_event(stripe_on, "payment_method.automatically_updated", method.token, exp_month=3, exp_year=2034)
    assert deliver(client, payload).status_code == 200

    method.refresh_from_db()
    assert (method.exp_month, method.exp_year, method.last4, method.active) == (3, 2034, "4242", True)


def test_payment_method_detached_at_stripe_is_deactivated(client, stripe_on, make_customer):
    method = payment_method_attach(customer=make_customer(), source=stripe_card(VISA_OK))
    assert method.is_default

    assert deliver(client, _pm_event(stripe_on, "payment_method.detached", method.token)).status_code == 200

    method.refresh_from_db()
    assert not method.active and not method.is_default


def test_setup_intent_succeeded_saves_the_method_even_if_the_browser_never_came_back(client, stripe_on, make_customer):
    from billing.services.payments import payment_method_setup_intent_start

    customer = make_customer()
    session = payment_method_setup_intent_start(customer=customer)
    card = stripe_on.v1.payment_methods.create(params={"type": "card", **stripe_card(VISA_OK)})
    intent = stripe_on.v1.setup_intents.confirm(session.reference, params={"payment_method": card.id})
    payload = json.dumps(
        {
            "id": "evt_setup_1",
            "object": "event",
            "type": "setup_intent.succeeded",
            "data": {"object": json.loads(str(intent))},
        }
    ).encode()

    assert deliver(client, payload).status_code == 200

    saved = PaymentMethod.objects.get(customer=customer)
    assert (saved.token, saved.last4, saved.gateway) == (card.id, "4242", "stripe")
