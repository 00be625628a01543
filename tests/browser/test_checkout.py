"""A visitor pays on the hosted checkout page in a real browser (Playwright + Debian's Chromium):
details with a Belgian VAT number (reverse charge shown live), the sandbox's card page, the
success URL; a declining card comes back with the reason. Every checkout page passes axe."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from billing.checkout.models import CheckoutSession
from billing.checkout.selectors import checkout_session_url
from billing.checkout.services import checkout_session_create
from billing.models import Price, Subscription
from customers.models import Customer
from tests.browser.axe import assert_accessible

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def session(live_server, settings, brand_factory, tax_rate_factory, product_factory):
    settings.TARIF_BASE_URL = live_server.url
    settings.TARIF_CHECKOUT_MIN_FILL_SECONDS = 0
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    brand = brand_factory(slug="atelier", is_default=True, primary_colour="#7a1f5c")
    price = Price.objects.create(
        product=product_factory(name="Pro"),
        currency="EUR",
        unit_amount=Decimal(2900),
        cycle={"kind": "interval", "unit": "month", "count": 1},
        livemode=False,
    )
    return checkout_session_create(
        brand=brand,
        livemode=False,
        mode="subscription",
        line_items=[(price, 1)],
        success_url=f"{live_server.url}/healthz?cs={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{live_server.url}/healthz",
    )


def fill_details(page: Page) -> None:
    page.locator("input[name=customer_type][value=business]").check()
    page.fill("#id_legal_name", "Brasserie Zenne BV")
    page.fill("#id_email", "finance@zenne.example")
    page.select_option("#id_country", "BE")
    page.fill("#id_tax_id", "BE0403019261")


def enter_card(page: Page, number: str) -> None:
    page.fill("#id_number", number)
    page.fill("#id_exp_month", "12")
    page.fill("#id_exp_year", "2034")
    page.fill("#id_cvc", "123")
    page.locator("#sandbox-card-form button[type=submit]").click()


def test_visitor_pays_with_a_belgian_vat_number_and_lands_on_the_success_url(page: Page, session):
    page.goto(checkout_session_url(session))
    expect(page.locator(".test-mode-banner")).to_be_visible()
    assert_accessible(page, name="checkout page")
    fill_details(page)
    # The total follows the VAT number live: reverse charge, no VAT on 29,00 €.
    expect(page.locator("#summary-total")).to_contain_text("29,00")
    expect(page.locator("#summary-mention")).to_contain_text("Autoliquidation")
    assert_accessible(page, name="checkout page with a total")
    page.locator("button.pay").click()
    page.wait_for_url("**/sandbox/checkout/**")
    enter_card(page, "4242424242424242")
    page.wait_for_url(f"**/healthz?cs={session.public_id}")
    session.refresh_from_db()
    assert session.status == "complete"
    customer = Customer.objects.get()
    assert customer.tax_id == "BE0403019261" and not customer.livemode
    assert Subscription.objects.get().customer == customer


def test_a_declining_card_comes_back_with_the_reason_and_creates_nothing(page: Page, session):
    page.goto(checkout_session_url(session))
    fill_details(page)
    expect(page.locator("#summary-total")).to_contain_text("29,00")
    page.locator("button.pay").click()
    page.wait_for_url("**/sandbox/checkout/**")
    enter_card(page, "4000000000000002")
    expect(page.locator("#decline-message")).to_contain_text("declined")
    assert_accessible(page, name="checkout page after a decline")
    assert not Customer.objects.exists()
    assert CheckoutSession.objects.get().status == "open"


def test_a_bad_vat_number_is_an_error_tied_to_its_field(page: Page, session):
    page.goto(checkout_session_url(session))
    fill_details(page)
    page.fill("#id_tax_id", "BE0000000000")
    page.locator("button.pay").click()
    expect(page.locator("#id_tax_id_error")).to_be_visible()
    assert page.get_attribute("#id_tax_id", "aria-describedby").startswith("id_tax_id_error")
    assert_accessible(page, name="checkout page with a form error")


def test_a_visitor_signs_a_sepa_mandate_on_the_page(page: Page, session):
    """With card, SEPA and bank transfer offered: the SEPA fields appear when SEPA is chosen, a
    missing mandate acceptance is an error tied to its field, then the mandate completes the
    checkout without the card page."""
    brand = session.brand
    brand.iban, brand.bic = "FR7630006000011234567890189", "AGRIFRPP"
    brand.save()
    CheckoutSession.objects.filter(pk=session.pk).update(payment_method_types=["card", "sepa_debit", "bank_transfer"])
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(checkout_session_url(session))
    fill_details(page)
    expect(page.locator("#sepa-fields")).to_be_hidden()
    page.locator("input[name=payment_method_type][value=sepa_debit]").check()
    expect(page.locator("#sepa-fields")).to_be_visible()
    page.fill("#id_account_holder", "Brasserie Zenne BV")
    page.fill("#id_iban", "AT61 1904 3002 3457 3201")
    assert_accessible(page, name="checkout page with the SEPA mandate")
    page.locator("button.pay").click()
    expect(page.locator("#id_accept_mandate_error")).to_be_visible()
    assert_accessible(page, name="checkout page with a mandate error")
    page.locator("input[name=payment_method_type][value=sepa_debit]").check()
    page.fill("#id_iban", "AT61 1904 3002 3457 3201")
    page.locator("#id_accept_mandate").check()
    page.locator("button.pay").click()
    page.wait_for_url(f"**/healthz?cs={session.public_id}")
    session.refresh_from_db()
    assert session.status == "complete" and session.payment_method.kind == "sepa_debit"
