"""The hosted page through Django's test client: form, live total, sandbox card, return, refusals."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlparse

import pytest
import time_machine
from django.core.cache import cache

from billing.checkout.models import CheckoutSession
from billing.models import Coupon, PromotionCode, Subscription
from config.events.models import DomainEvent
from customers.models import Customer
from invoices.models import Invoice
from tests.billing.checkout.helpers import DECLINING_CARD, GOOD_CARD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_time_trap(settings):
    settings.TARIF_CHECKOUT_MIN_FILL_SECONDS = 0
    cache.clear()  # rate-limit counters start from zero in each test


def page(session):
    return f"/checkout/{session.public_id}/"


def shown_token(client, session):
    response = client.get(page(session))
    html = response.content.decode()
    start = html.index('name="shown" value="') + len('name="shown" value="')
    return html[start : html.index('"', start)]


def details(client, session, **overrides):
    data = {
        "customer_type": "business",
        "legal_name": "Brasserie Zenne BV",
        "email": "finance@zenne.example",
        "country": "BE",
        "tax_id": "BE0403019261",
        "shown": shown_token(client, session),
        "website": "",
    }
    data.update(overrides)
    return data


def checkout_with_card(client, session, card, **overrides):
    """Details form -> sandbox hosted page -> return URL: the final response."""
    response = client.post(page(session), details(client, session, **overrides))
    assert response.status_code == 302, response.content.decode()[:2000]
    hosted = urlparse(response["Location"]).path
    assert hosted.startswith("/sandbox/checkout/")
    back = client.post(hosted, card)
    assert back.status_code == 302
    return client.get(back["Location"])


def test_the_page_shows_the_brand_the_items_and_a_total(client, make_session):
    session = make_session()
    response = client.get(page(session))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Atelier Nuage" in html and "Pro monthly" in html
    assert 'id="summary-total"' in html and "€34.80" in html  # provisional: the seller's country
    assert "Test mode" not in html
    assert 'class="hp-field" aria-hidden="true"' in html


def test_a_test_mode_session_page_says_so(client, make_session, price_factory):
    session = make_session(livemode=False, line_items=[(price_factory(livemode=False), 1)])
    assert "Test mode" in client.get(page(session)).content.decode()


@pytest.mark.parametrize(
    ("query", "total", "reverse_charge"),
    [
        ({"customer_type": "business", "country": "FR", "tax_id": "FR40303265045"}, "€34.80", False),
        ({"customer_type": "business", "country": "BE", "tax_id": "BE0403019261"}, "€29.00", True),
        ({"customer_type": "person", "country": "FR"}, "€34.80", False),
        # B2C elsewhere in the EU: digital services are taxed where the consumer lives (BE 21 %).
        ({"customer_type": "person", "country": "BE"}, "€35.09", False),
    ],
)
def test_live_total_follows_country_and_vat_number(client, make_session, query, total, reverse_charge):
    session = make_session()
    response = client.get(f"{page(session)}total/", query, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    total_cell = html[html.index('id="summary-total"') :].split("</td>")[0]
    assert total in total_cell
    assert ("Reverse charge" in html) == reverse_charge


def test_live_total_reports_a_bad_vat_number_next_to_the_total(client, make_session):
    session = make_session()
    html = client.get(
        f"{page(session)}total/", {"customer_type": "business", "country": "FR", "tax_id": "FR00303265045"}
    ).content.decode()
    assert 'id="summary-vat-error"' in html and "€34.80" in html


def test_live_total_applies_a_promotion_code_and_reports_an_unknown_one(client, make_session):
    coupon = Coupon.objects.create(name="Half", percent_off=Decimal(50), duration="once")
    PromotionCode.objects.create(coupon=coupon, code="HALF")
    session = make_session(allow_promotion_codes=True)
    good = client.get(f"{page(session)}total/", {"country": "FR", "customer_type": "person", "promotion_code": "HALF"})
    assert "€17.40" in good.content.decode() and "summary-promotion-error" not in good.content.decode()
    bad = client.get(f"{page(session)}total/", {"country": "FR", "customer_type": "person", "promotion_code": "NOPE"})
    assert "summary-promotion-error" in bad.content.decode() and "€34.80" in bad.content.decode()


def test_full_checkout_creates_everything_and_redirects_with_the_session_id(
    client, make_session, mailoutbox, django_capture_on_commit_callbacks
):
    session = make_session()
    with django_capture_on_commit_callbacks(execute=True):
        response = checkout_with_card(client, session, GOOD_CARD)
    assert response.status_code == 302
    assert response["Location"] == f"https://shop.example/thanks?session={session.public_id}"
    customer = Customer.objects.get()
    assert customer.country == "BE" and customer.tax_id == "BE0403019261" and customer.preferred_language == "en"
    invoice = Invoice.objects.get()
    assert invoice.total == 2900 and invoice.tax_total == 0 and invoice.status == "paid"
    assert Subscription.objects.get().customer == customer
    assert any(message.to == ["finance@zenne.example"] for message in mailoutbox)
    assert DomainEvent.objects.filter(type="checkout.session.completed", object_id=session.public_id).count() == 1
    # Replayed return URL, reloaded page: straight to the success URL, nothing twice.
    again = client.get(f"{page(session)}return/?session_id=whatever")
    assert again.status_code == 302 and again["Location"].endswith(session.public_id)
    assert client.get(page(session))["Location"].endswith(session.public_id)
    assert Customer.objects.count() == 1 and Invoice.objects.count() == 1


def test_a_declining_card_comes_back_to_the_page_with_the_reason_and_nothing_created(client, make_session):
    session = make_session()
    response = checkout_with_card(client, session, DECLINING_CARD)
    assert response.status_code == 302 and response["Location"] == page(session)
    html = client.get(page(session)).content.decode()
    assert 'id="decline-message"' in html and "declined by your bank" in html
    assert not Customer.objects.exists() and not Invoice.objects.exists() and not Subscription.objects.exists()


def test_bad_vat_number_is_a_form_error_tied_to_its_field(client, make_session):
    session = make_session()
    response = client.post(page(session), details(client, session, tax_id="BE0000000000"))
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_tax_id_error"' in html and 'aria-describedby="id_tax_id_error id_tax_id_help"' in html
    assert CheckoutSession.objects.get().gateway_session_id == ""


def test_required_fields_are_form_errors(client, make_session):
    session = make_session(billing_address_collection="required")
    response = client.post(page(session), details(client, session))
    html = response.content.decode()
    assert response.status_code == 400 and 'id="id_city_error"' in html


def test_honeypot_and_time_trap_refuse_robots(client, make_session, settings):
    session = make_session()
    filled = client.post(page(session), details(client, session, website="http://spam.example"))
    assert filled.status_code == 400 and 'id="form-errors"' in filled.content.decode()
    settings.TARIF_CHECKOUT_MIN_FILL_SECONDS = 30
    fast = client.post(page(session), details(client, session))
    assert fast.status_code == 400 and "take a moment" in fast.content.decode()
    forged = client.post(page(session), {**details(client, session), "shown": "forged"})
    assert forged.status_code == 400
    assert CheckoutSession.objects.get().gateway_session_id == ""


def test_the_form_needs_a_csrf_token(make_session):
    from django.test import Client

    session = make_session()
    strict = Client(enforce_csrf_checks=True)
    assert strict.post(page(session), {"legal_name": "x"}).status_code == 403


def test_unknown_and_mismatched_ids_are_404(client, make_session):
    session = make_session()
    assert client.get("/checkout/cs_live_nope/").status_code == 404
    assert client.get(f"/checkout/{session.public_id.replace('cs_live_', 'cs_test_')}/").status_code == 404
    assert client.get("/checkout/sub_1/").status_code == 404


def test_an_expired_session_page_says_so(client, make_session):
    session = make_session()
    with time_machine.travel(session.expires_at + timedelta(minutes=1)):
        response = client.post(page(session), details(client, session))
    assert response.status_code == 410
    session.refresh_from_db()
    assert session.status == "expired"
    assert client.get(page(session)).status_code == 410


def test_rate_limits_answer_429(client, make_session, settings):
    settings.TARIF_RATELIMIT_CHECKOUT_TOTAL = "2/m"
    session = make_session()
    statuses = [client.get(f"{page(session)}total/", {"country": "FR"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    settings.TARIF_RATELIMIT_CHECKOUT_SUBMIT = "1/m"
    client.post(page(session), {"legal_name": "x"})
    assert client.post(page(session), {"legal_name": "x"}).status_code == 429
