"""The portal's hosted "add a card" and SEPA pages with Stripe as the gateway (Checkout, emulated on localstripe)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from billing.models import DunningCase, PaymentMethod
from invoices.models import Invoice
from tests.billing.payments.stripe_gateway import conftest as stripe_fixtures
from tests.billing.payments.stripe_gateway.conftest import DECLINED_AT_CHARGE, SEPA_OK, VISA_OK, checkout_submit
from tests.customers.portal.conftest import fresh_step_up

pytestmark = pytest.mark.django_db

# The Stripe gateway's fixtures (localstripe on loopback, Tarif configured for it).
localstripe_url = stripe_fixtures.localstripe_url
stripe_on = stripe_fixtures.stripe_on
localstripe = stripe_fixtures.localstripe


@pytest.fixture
def stripe_account(stripe_on, make_portal_account):
    """make_portal_account, with the starting card and first charge going through Stripe."""
    return make_portal_account


def start_checkout(client, localstripe, page="/portal/payment-methods/card/"):
    """Open the portal page, post its form, land on Checkout: returns (session id, form-action CSP of the page)."""
    shown = client.get(page)
    assert shown.status_code == 200
    started = client.post(page, {"make_default": "on"})  # the customer ticks "make it my default"
    assert started.status_code == 302
    checkout = started["Location"]
    assert checkout.startswith(f"{localstripe.url}/checkout/pay/cs_test_")
    return checkout.rsplit("/", 1)[1], shown


def return_from_checkout(client, stripe_on, session_id):
    """Follow Checkout's redirect back to the portal (its success_url, with the session id filled in)."""
    success = urlsplit(stripe_on.v1.checkout.sessions.retrieve(session_id).success_url)
    assert success.path == "/portal/payment-methods/card/return/" and success.query == f"session_id={session_id}"
    return client.get(f"{success.path}?{success.query}")


def test_adding_a_card_goes_through_stripe_checkout(stripe_on, localstripe, stripe_account, client):
    customer, user, _subscription, _invoice = stripe_account("anna@client.example", number="5555555555554444")
    client.force_login(user)
    fresh_step_up(client)

    session_id, page = start_checkout(client, localstripe)
    checkout_submit(localstripe, session_id, number=VISA_OK)
    back = return_from_checkout(client, stripe_on, session_id)

    assert back.status_code == 302 and back["Location"] == "/portal/payment-methods/"
    default = PaymentMethod.objects.get(customer=customer, is_default=True, active=True)
    assert (default.gateway, default.brand, default.last4, default.exp_year) == ("stripe", "visa", "4242", 2030)
    assert PaymentMethod.objects.filter(customer=customer, active=True).count() == 2
    listing = client.get("/portal/payment-methods/").content.decode()
    assert "4242" in listing and 'name="number"' not in listing
    # The page's form may redirect to Checkout (Chrome applies form-action to the redirect); no Stripe.js.
    policy = page["Content-Security-Policy"]
    form_action = next(part for part in policy.split(";") if part.strip().startswith("form-action"))
    assert "https://checkout.stripe.com" in form_action and localstripe.url in form_action
    assert "js.stripe.com" not in policy
    # Reloading the return page stores nothing twice.
    assert return_from_checkout(client, stripe_on, session_id).status_code == 302
    assert PaymentMethod.objects.filter(customer=customer, token=default.token).count() == 1


def test_a_new_card_from_checkout_retries_a_past_due_invoice(
    stripe_on,
    localstripe,
    stripe_account,
    client,
    django_capture_on_commit_callbacks,
):
    customer, user, _subscription, invoice = stripe_account("late@client.example", number=DECLINED_AT_CHARGE)
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.ACTIVE
    client.force_login(user)
    fresh_step_up(client)
    session_id, _page = start_checkout(client, localstripe)
    checkout_submit(localstripe, session_id, number=VISA_OK)

    with django_capture_on_commit_callbacks(execute=True):
        return_from_checkout(client, stripe_on, session_id)

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert DunningCase.objects.get(invoice=invoice).status != DunningCase.Status.ACTIVE


def test_another_customers_checkout_session_is_refused(stripe_on, localstripe, stripe_account, client):
    _anna, anna_user, _s, _i = stripe_account("anna@client.example")
    bob, bob_user, _s2, _i2 = stripe_account("bob@other.example")
    client.force_login(anna_user)
    fresh_step_up(client)
    session_id, _page = start_checkout(client, localstripe)
    checkout_submit(localstripe, session_id)

    client.force_login(bob_user)
    assert return_from_checkout(client, stripe_on, session_id).status_code == 404
    assert PaymentMethod.objects.filter(customer=bob).count() == 1  # only the card it started with


def test_an_unfinished_checkout_session_is_refused(stripe_on, localstripe, stripe_account, client):
    customer, user, _s, _i = stripe_account()
    client.force_login(user)
    fresh_step_up(client)
    session_id, _page = start_checkout(client, localstripe)

    assert return_from_checkout(client, stripe_on, session_id).status_code == 404
    assert client.get("/portal/payment-methods/card/return/?session_id=cs_test_nonexistent").status_code == 404
    assert PaymentMethod.objects.filter(customer=customer).count() == 1


def test_sepa_mandate_goes_through_checkout_when_stripe_is_the_gateway(
    stripe_on,
    localstripe,
    stripe_account,
    client,
):
    customer, user, _s, _i = stripe_account()
    client.force_login(user)
    fresh_step_up(client)

    session_id, page = start_checkout(client, localstripe, page="/portal/payment-methods/sepa/")
    assert 'name="iban"' not in page.content.decode()  # the IBAN and the mandate are on Stripe's page
    assert stripe_on.v1.checkout.sessions.retrieve(session_id).payment_method_types == ["sepa_debit"]
    checkout_submit(localstripe, session_id, iban=SEPA_OK)
    back = return_from_checkout(client, stripe_on, session_id)

    assert back.status_code == 302
    default = PaymentMethod.objects.get(customer=customer, is_default=True, active=True)
    assert (default.kind, default.iban_last4) == ("sepa_debit", "3000") and default.mandate_reference
    shown = client.get("/portal/payment-methods/").content.decode()
    assert default.mandate_reference in shown


def test_without_sepa_on_checkout_the_sepa_page_keeps_its_own_form(
    stripe_on,
    localstripe,
    stripe_account,
    client,
    settings,
):
    settings.STRIPE_CHECKOUT_SETUP_TYPES = ["card"]
    _customer, user, _s, _i = stripe_account()
    client.force_login(user)
    fresh_step_up(client)

    assert 'name="iban"' in client.get("/portal/payment-methods/sepa/").content.decode()


def test_a_stripe_error_on_start_is_shown_not_a_crash(stripe_on, stripe_account, client, settings):
    _customer, user, _s, _i = stripe_account()
    client.force_login(user)
    fresh_step_up(client)
    settings.STRIPE_CHECKOUT_SETUP_TYPES = []

    started = client.post("/portal/payment-methods/card/", follow=True)
    assert started.redirect_chain[-1][0] == "/portal/payment-methods/"
    assert "Stripe Checkout n’est pas configuré" in started.content.decode()  # the portal speaks the customer's French


def test_a_method_the_webhook_saved_first_still_becomes_the_default_on_return(
    stripe_on, localstripe, stripe_account, client, django_capture_on_commit_callbacks
):
    from billing.services.payments import payment_method_setup_intent_complete

    customer, user, _subscription, invoice = stripe_account("race@client.example", number=DECLINED_AT_CHARGE)
    client.force_login(user)
    fresh_step_up(client)
    session_id, _page = start_checkout(client, localstripe)
    checkout_submit(localstripe, session_id, number=VISA_OK)
    # Stripe's setup_intent.succeeded webhook arrives before the browser does.
    setup_reference = stripe_on.v1.checkout.sessions.retrieve(session_id).setup_intent
    spare = payment_method_setup_intent_complete(customer=customer, setup_reference=setup_reference, make_default=False)
    assert not spare.is_default

    with django_capture_on_commit_callbacks(execute=True):
        return_from_checkout(client, stripe_on, session_id)

    spare.refresh_from_db()
    assert spare.is_default and PaymentMethod.objects.filter(customer=customer, token=spare.token).count() == 1
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
