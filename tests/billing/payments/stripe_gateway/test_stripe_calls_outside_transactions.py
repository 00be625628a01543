"""Issue 14: no Stripe call while a transaction is open on the webhook's setup path.

Every HTTP request the stripe SDK makes (to localstripe here) goes through
`HTTPClient._request_with_retries_internal`; the guard notes whether a transaction was
open at that moment. The `setup_intent.succeeded` webhook reads the completed setup from
Stripe (and dj-stripe's mirror may fetch more): all of it must happen with none open.
"""

from __future__ import annotations

import json

import pytest
import stripe._http_client
from django.db import connection, transaction

from billing.models import GatewayEvent, PaymentMethod
from billing.services.payments import payment_method_setup_intent_start
from tests.billing.payments.stripe_gateway.conftest import VISA_OK, sign, stripe_card

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/payments/stripe/webhook/"


@pytest.fixture
def stripe_calls(monkeypatch):
    """(in_atomic_block, method, url) for every Stripe HTTP request."""
    calls: list[tuple[bool, str, str]] = []
    original = stripe._http_client.HTTPClient._request_with_retries_internal

    def guarded(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((connection.in_atomic_block, method, url))
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(stripe._http_client.HTTPClient, "_request_with_retries_internal", guarded)
    return calls


def setup_succeeded_event(stripe_on, customer) -> bytes:
    session = payment_method_setup_intent_start(customer=customer)
    card = stripe_on.v1.payment_methods.create(params={"type": "card", **stripe_card(VISA_OK)})
    intent = stripe_on.v1.setup_intents.confirm(session.reference, params={"payment_method": card.id})
    return json.dumps(
        {
            "id": f"evt_setup_{session.reference}",
            "object": "event",
            "type": "setup_intent.succeeded",
            "data": {"object": json.loads(str(intent))},
        }
    ).encode()


def test_the_setup_webhook_calls_stripe_with_no_transaction_open(client, stripe_on, make_customer, stripe_calls):
    customer = make_customer()
    payload = setup_succeeded_event(stripe_on, customer)
    stripe_calls.clear()

    response = client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload))

    assert response.status_code == 200
    assert PaymentMethod.objects.filter(customer=customer, gateway="stripe", active=True).count() == 1
    assert GatewayEvent.objects.get().processed_at is not None
    assert stripe_calls, "the setup path reads the completed setup from Stripe"
    inside = [(method, url) for in_atomic, method, url in stripe_calls if in_atomic]
    assert inside == [], f"Stripe called inside a transaction: {inside}"


def test_a_redelivered_setup_webhook_calls_stripe_no_more(client, stripe_on, make_customer, stripe_calls):
    customer = make_customer()
    payload = setup_succeeded_event(stripe_on, customer)
    client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload))
    stripe_calls.clear()

    again = client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload))

    assert again.json() == {"received": True, "duplicate": True}
    assert stripe_calls == []
    assert PaymentMethod.objects.filter(customer=customer).count() == 1


def test_negative_control_the_guard_sees_a_stripe_call_inside_a_transaction(stripe_on, stripe_calls):
    with transaction.atomic():
        stripe_on.v1.customers.create(params={"email": "inside@example.com"})

    assert [in_atomic for in_atomic, _method, _url in stripe_calls] == [True]
