"""Issue 17: a card is verified with the gateway before it is saved (never stored when declined)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import stripe

from billing.models import PaymentMethod, SandboxPaymentMethod
from billing.payments.gateway import CardDeclined, GatewayError
from billing.payments.sandbox import SandboxGateway
from billing.payments.stripe import StripeGateway

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("4000000000000002", "generic_decline"),
        ("4000000000000341", "generic_decline"),
        ("4000000000009995", "insufficient_funds"),
    ],
)
def test_the_sandbox_refuses_declining_cards_when_verifying(number, code):
    gateway = SandboxGateway()
    details = gateway.attach_payment_method(
        customer_reference="1", source={"card": {"number": number, "exp_month": 12, "exp_year": 2031}}
    )

    with pytest.raises(CardDeclined) as refused:
        gateway.verify_payment_method(token=details.token)

    assert refused.value.decline_code == code and refused.value.http_status == 402


def test_the_sandbox_accepts_a_good_card_when_verifying():
    gateway = SandboxGateway()
    details = gateway.attach_payment_method(
        customer_reference="1", source={"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031}}
    )

    gateway.verify_payment_method(token=details.token)  # no exception: the card is good

    assert SandboxPaymentMethod.objects.filter(token=details.token).exists()


def _stripe_gateway_with_intent(monkeypatch, intent: dict) -> StripeGateway:
    gateway = StripeGateway(livemode=False)
    retrieved = stripe.StripeObject.construct_from(intent, "sk_test_x")
    fake_client = SimpleNamespace(v1=SimpleNamespace(setup_intents=SimpleNamespace(retrieve=lambda _ref: retrieved)))
    monkeypatch.setattr(gateway, "_client", lambda: fake_client)
    monkeypatch.setattr(gateway, "customer_id", lambda *, customer_reference: "cus_1")
    return gateway


def test_a_setup_intent_the_issuer_declined_is_a_card_declined(monkeypatch):
    gateway = _stripe_gateway_with_intent(
        monkeypatch,
        {
            "id": "seti_1",
            "customer": "cus_1",
            "status": "requires_payment_method",
            "last_setup_error": {"code": "card_declined", "decline_code": "insufficient_funds"},
        },
    )

    with pytest.raises(CardDeclined) as refused:
        gateway.setup_complete(customer_reference="1", setup_reference="seti_1")

    assert refused.value.decline_code == "insufficient_funds"
    assert not PaymentMethod.objects.exists()


def test_an_unfinished_setup_intent_is_not_called_a_decline(monkeypatch):
    gateway = _stripe_gateway_with_intent(
        monkeypatch, {"id": "seti_2", "customer": "cus_1", "status": "requires_action", "last_setup_error": None}
    )

    with pytest.raises(GatewayError) as refused:
        gateway.setup_complete(customer_reference="1", setup_reference="seti_2")

    assert not isinstance(refused.value, CardDeclined)
