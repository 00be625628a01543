"""Stripe Checkout in setup mode (the portal's hosted "add a card / SEPA mandate" page) against localstripe."""

from __future__ import annotations

from urllib.error import HTTPError
from urllib.parse import parse_qs, urlsplit

import pytest
from djstripe import models as djstripe_models

from billing.models import PaymentMethod
from billing.payments.gateway import GatewayError
from billing.payments.stripe import StripeGateway
from billing.services.payments import (
    payment_method_hosted_setup_options,
    payment_method_setup_complete,
    payment_method_setup_start,
)
from tests.billing.payments.stripe_gateway.conftest import (
    DECLINED_AT_ATTACH,
    REQUIRES_ACTION,
    SEPA_OK,
    VISA_OK,
    checkout_submit,
    stripe_card,
)

pytestmark = pytest.mark.django_db

RETURN_URL = "https://portal.example/portal/payment-methods/card/return/"
CANCEL_URL = "https://portal.example/portal/payment-methods/"


def start(customer, types=("card",)):
    return payment_method_setup_start(
        customer=customer, return_url=RETURN_URL, cancel_url=CANCEL_URL, payment_method_types=types
    )


def test_a_setup_session_is_a_checkout_session_in_setup_mode_for_the_customer(stripe_on, localstripe, make_customer):
    customer = make_customer()

    session = start(customer)

    assert session.id.startswith("cs_test_")
    assert session.url == f"{localstripe.url}/checkout/pay/{session.id}"
    remote = stripe_on.v1.checkout.sessions.retrieve(session.id)
    assert (remote.mode, remote.status, remote.payment_method_types) == ("setup", "open", ["card"])
    assert remote.customer == djstripe_models.Customer.objects.get(subscriber=customer).id
    # Checkout fills the session id into the return address.
    assert parse_qs(urlsplit(remote.success_url).query) == {"session_id": [session.id]}
    assert remote.cancel_url == CANCEL_URL
    assert stripe_on.v1.setup_intents.retrieve(remote.setup_intent).status == "requires_payment_method"


def test_completing_stores_the_card_once_with_brand_and_last4(stripe_on, localstripe, make_customer):
    customer = make_customer()
    session = start(customer)
    checkout_submit(localstripe, session.id, number=VISA_OK)

    method = payment_method_setup_complete(customer=customer, session_id=session.id)

    assert (method.gateway, method.kind, method.brand, method.last4, method.exp_year, method.is_default) == (
        "stripe",
        "card",
        "visa",
        "4242",
        2030,
        True,
    )
    assert method.token.startswith("pm_")
    assert stripe_on.v1.payment_methods.retrieve(method.token).customer == (
        djstripe_models.Customer.objects.get(subscriber=customer).id
    )
    # A reloaded return page: same method, nothing stored twice; the gateway answers the same.
    assert payment_method_setup_complete(customer=customer, session_id=session.id) == method
    again = StripeGateway().complete_setup_session(session_id=session.id, customer_reference=str(customer.pk))
    assert again.token == method.token
    assert PaymentMethod.objects.filter(customer=customer).count() == 1


def test_an_incomplete_session_is_refused(stripe_on, localstripe, make_customer):
    customer = make_customer()
    session = start(customer)

    with pytest.raises(GatewayError, match="not completed"):
        payment_method_setup_complete(customer=customer, session_id=session.id)
    assert not PaymentMethod.objects.exists()


def test_a_session_needing_authentication_stays_open_and_is_refused(stripe_on, localstripe, make_customer):
    customer = make_customer()
    session = start(customer)

    assert checkout_submit(localstripe, session.id, number=REQUIRES_ACTION)["status"] == "open"

    with pytest.raises(GatewayError, match="not completed"):
        payment_method_setup_complete(customer=customer, session_id=session.id)
    assert not PaymentMethod.objects.exists()


def test_a_declined_card_on_the_hosted_page_saves_nothing(stripe_on, localstripe, make_customer):
    customer = make_customer()
    session = start(customer)

    with pytest.raises(HTTPError) as declined:
        checkout_submit(localstripe, session.id, number=DECLINED_AT_ATTACH)
    assert declined.value.code == 402

    with pytest.raises(GatewayError, match="not completed"):
        payment_method_setup_complete(customer=customer, session_id=session.id)


def test_another_customers_session_is_refused(stripe_on, localstripe, make_customer):
    alice, bruno, chloe = make_customer(), make_customer(), make_customer()
    session = start(alice)
    checkout_submit(localstripe, session.id)
    # Chloe already has a Stripe customer; Bruno has none yet.
    from billing.services.payments import payment_method_attach

    payment_method_attach(customer=chloe, source=stripe_card(VISA_OK))

    for intruder in (bruno, chloe):
        with pytest.raises(GatewayError, match="another customer"):
            payment_method_setup_complete(customer=intruder, session_id=session.id)
    assert not PaymentMethod.objects.filter(customer=bruno).exists()
    assert PaymentMethod.objects.filter(customer=chloe).count() == 1
    assert not djstripe_models.Customer.objects.filter(subscriber=bruno).exists()  # no side effect at Stripe


@pytest.mark.parametrize("session_id", ["cs_test_doesnotexist", "seti_123", ""])
def test_unknown_or_malformed_session_ids_are_refused(stripe_on, localstripe, make_customer, session_id):
    customer = make_customer()
    start(customer)  # the customer exists at Stripe
    with pytest.raises(GatewayError):
        payment_method_setup_complete(customer=customer, session_id=session_id)


def test_sepa_mandate_through_checkout(stripe_on, localstripe, make_customer):
    customer = make_customer()
    session = start(customer, ("sepa_debit",))
    assert stripe_on.v1.checkout.sessions.retrieve(session.id).payment_method_types == ["sepa_debit"]
    with pytest.raises(HTTPError):  # the page of a SEPA session takes no card
        checkout_submit(localstripe, session.id, number=VISA_OK)

    checkout_submit(localstripe, session.id, iban=SEPA_OK)
    method = payment_method_setup_complete(customer=customer, session_id=session.id)

    assert (method.kind, method.iban_last4, method.is_default) == ("sepa_debit", "3000", True)
    assert method.mandate_reference
    assert SEPA_OK not in str(PaymentMethod.objects.filter(pk=method.pk).values().get())


def test_checkout_takes_only_the_configured_types(stripe_on, settings, make_customer):
    assert payment_method_hosted_setup_options().payment_method_types == ("card", "sepa_debit")
    settings.STRIPE_CHECKOUT_SETUP_TYPES = ["card"]
    customer = make_customer()

    assert payment_method_hosted_setup_options().payment_method_types == ("card",)
    with pytest.raises(GatewayError, match="sepa_debit"):
        start(customer, ("sepa_debit",))
    with pytest.raises(GatewayError):
        start(customer, ())


def test_the_hosted_page_origins_allow_checkout_and_the_local_api_host(stripe_on, localstripe):
    assert payment_method_hosted_setup_options().origins == ("https://checkout.stripe.com", localstripe.url)
