"""Issue 17: a checkout offers a card, a SEPA mandate and a bank transfer (per session and configuration)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from billing.checkout.errors import CheckoutError
from billing.checkout.models import CheckoutSession
from billing.models import PaymentMethod, Subscription
from config.events.models import DomainEvent
from customers.models import Customer
from invoices.models import Invoice
from tests.api.conftest import _fresh_cache, assert_problem, client_for, make_key  # noqa: F401 (fixtures)
from tests.billing.checkout.test_page import details, page

pytestmark = pytest.mark.django_db

GOOD_IBAN = "AT61 1904 3002 3457 3201"
SUCCESS = "https://shop.example/thanks?session="


@pytest.fixture(autouse=True)
def _no_time_trap(settings):
    settings.TARIF_CHECKOUT_MIN_FILL_SECONDS = 0
    cache.clear()


@pytest.fixture
def banked(seller):
    seller.iban = "FR7630006000011234567890189"
    seller.bic = "AGRIFRPP"
    seller.save()
    return seller


# -- what a session may offer -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("types", "overrides", "code"),
    [
        (["card", "paypal"], {}, "invalid_payment_method_type"),
        (["card", "card"], {}, "duplicate_payment_method_type"),
        ([], {}, "invalid_types"),
        (["bank_transfer"], {"mode": "setup", "line_items": []}, "bank_transfer_in_setup"),
    ],
)
def test_impossible_payment_method_types_are_refused(banked, make_session, types, overrides, code):
    with pytest.raises(CheckoutError) as refused:
        make_session(payment_method_types=types, **overrides)
    assert refused.value.code == code
    assert CheckoutSession.objects.count() == 0


def test_sepa_needs_euros_and_a_bank_transfer_needs_the_brands_bank_details(
    seller, make_session, price_factory, settings
):
    dollars = price_factory(currency="USD")
    with pytest.raises(CheckoutError) as refused:
        make_session(line_items=[(dollars, 1)], payment_method_types=["card", "sepa_debit"])
    assert refused.value.code == "sepa_requires_eur"
    assert not seller.iban
    with pytest.raises(CheckoutError) as refused:
        make_session(payment_method_types=["bank_transfer"])
    assert refused.value.code == "bank_transfer_unavailable"
    # The configured default drops what a session cannot take instead of refusing it.
    settings.TARIF_CHECKOUT_PAYMENT_METHOD_TYPES = ["card", "sepa_debit", "bank_transfer"]
    assert make_session(line_items=[(dollars, 1)]).payment_method_types == ["card"]
    assert make_session().payment_method_types == ["card", "sepa_debit"]


# -- SEPA mandate signed on the page (the sandbox's hosted page takes cards only) ---------------


def sepa_details(client, session, **overrides):
    data = details(client, session, payment_method_type="sepa_debit", account_holder="Brasserie Zenne BV")
    data.update({"iban": GOOD_IBAN, "accept_mandate": "on"})
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_the_page_offers_the_sessions_methods_and_the_sepa_mandate(client, make_session):
    session = make_session(payment_method_types=["card", "sepa_debit"])
    html = client.get(page(session)).content.decode()
    assert 'name="payment_method_type"' in html and 'value="sepa_debit"' in html
    assert 'id="sepa-fields"' in html and 'name="iban"' in html and 'name="accept_mandate"' in html
    # The live total never sends the IBAN in a query string.
    assert 'hx-params="not csrfmiddlewaretoken,account_holder,iban,accept_mandate,website"' in html
    card_only = client.get(page(make_session())).content.decode()
    assert 'name="payment_method_type"' not in card_only and 'name="iban"' not in card_only


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"accept_mandate": None}, "accept_mandate", "Accept the SEPA Direct Debit mandate"),
        ({"iban": "FR76 0000 0000 0000"}, "iban", "not a valid IBAN"),
        ({"iban": ""}, "iban", "Enter the IBAN"),
        ({"account_holder": ""}, "account_holder", "account holder"),
        # A valid IBAN the sandbox does not know: the gateway's refusal, next to the field.
        ({"iban": "FR76 3000 6000 0112 3456 7890 189"}, "iban", "test IBANs"),
    ],
)
def test_a_sepa_mandate_that_is_not_complete_is_refused_next_to_its_field(
    client, make_session, overrides, field, message
):
    session = make_session(payment_method_types=["card", "sepa_debit"])
    response = client.post(page(session), sepa_details(client, session, **overrides))
    html = response.content.decode()
    assert response.status_code == 400
    assert f'id="id_{field}_error"' in html and message in html
    assert Customer.objects.count() == 0 and PaymentMethod.objects.count() == 0
    session.refresh_from_db()
    assert session.status == "open"


def test_a_sepa_mandate_completes_at_once_and_becomes_the_default_method(
    client, make_session, django_capture_on_commit_callbacks
):
    session = make_session(payment_method_types=["card", "sepa_debit"])
    form = sepa_details(client, session)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(page(session), form)
    assert response.status_code == 302 and response["Location"] == SUCCESS + session.public_id
    session.refresh_from_db()
    method = PaymentMethod.objects.get()
    assert (session.status, session.payment_method_type, session.payment_method) == ("complete", "sepa_debit", method)
    assert (
        method.kind == "sepa_debit" and method.is_default and method.iban_last4 == "3201" and method.mandate_reference
    )
    assert session.details["sepa_mandate"]["account_holder"] == "Brasserie Zenne BV"
    assert "iban" not in str(session.details).lower().replace("sepa_mandate", "")  # the IBAN stays at the gateway
    assert Subscription.objects.get().collection_method == "charge_automatically"
    # A double submit: the session is complete, nothing is made twice.
    again = client.post(page(session), form)
    assert again.status_code == 302 and again["Location"] == SUCCESS + session.public_id
    assert Customer.objects.count() == 1 and Subscription.objects.count() == 1 and PaymentMethod.objects.count() == 1


# -- bank transfer ----------------------------------------------------------------------------------


def test_a_bank_transfer_subscribes_with_invoices_sent_and_waiting_for_the_transfer(
    client, banked, make_session, mailoutbox, django_capture_on_commit_callbacks
):
    session = make_session(payment_method_types=["card", "bank_transfer"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(page(session), details(client, session, payment_method_type="bank_transfer"))
    assert response.status_code == 302 and response["Location"] == SUCCESS + session.public_id
    subscription = Subscription.objects.get()
    assert (subscription.collection_method, subscription.days_until_due) == ("send_invoice", 30)
    invoice = Invoice.objects.get()
    assert invoice.status == "open" and invoice.amount_due == invoice.total == 2900  # BE reverse charge
    assert PaymentMethod.objects.count() == 0
    assert DomainEvent.objects.filter(type="checkout.session.completed", object_id=session.public_id).count() == 1
    assert any(message.to == ["finance@zenne.example"] for message in mailoutbox)  # the portal invitation


def test_a_one_time_payment_by_bank_transfer_issues_an_open_invoice(client, banked, make_session, one_time):
    session = make_session(mode="payment", line_items=[(one_time, 1)], payment_method_types=["bank_transfer"])
    html = client.get(page(session)).content.decode()
    assert 'name="payment_method_type"' not in html and "payment provider" not in html  # one method: no choice
    response = client.post(page(session), details(client, session))
    assert response.status_code == 302
    invoice = Invoice.objects.get()
    assert invoice.collection_method == "send_invoice" and invoice.status == "open" and invoice.due_at is not None


def test_a_method_the_session_does_not_offer_is_refused(client, banked, make_session):
    session = make_session(payment_method_types=["card"])
    response = client.post(page(session), details(client, session, payment_method_type="bank_transfer"))
    assert response.status_code == 302 and "/sandbox/checkout/" in response["Location"]  # the form ignores it: card
    session = make_session(payment_method_types=["card", "sepa_debit"])
    response = client.post(page(session), details(client, session, payment_method_type="bank_transfer"))
    assert response.status_code == 400 and Subscription.objects.count() == 0


# -- API --------------------------------------------------------------------------------------------


def test_the_api_takes_and_returns_the_payment_method_types(make_key, banked, monthly):  # noqa: F811
    api = client_for(make_key()[1])
    body = {
        "mode": "subscription",
        "line_items": [{"price": f"price_{monthly.pk}", "quantity": 1}],
        "success_url": "https://shop.example/ok",
        "cancel_url": "https://shop.example/pricing",
    }
    created = api.post(
        "/api/v1/checkout/sessions", {**body, "payment_method_types": ["sepa_debit", "card"]}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["payment_method_types"] == ["sepa_debit", "card"]
    assert created.json()["payment_method_type"] == ""
    unknown = api.post("/api/v1/checkout/sessions", {**body, "payment_method_types": ["cash"]}, format="json")
    assert_problem(unknown, 400)
    setup = api.post(
        "/api/v1/checkout/sessions",
        {**body, "mode": "setup", "line_items": [], "payment_method_types": ["bank_transfer"]},
        format="json",
    )
    assert_problem(setup, 422, "bank_transfer_in_setup")
