"""Issue 17's self-serve walk in a real browser, end to end: a visitor on the pricing table buys a plan
on the hosted checkout with a French business VAT number (a Belgian number shows reverse charge on the
way), pays with the sandbox card, lands on the success page, receives the portal invitation through a
real SMTP server (aiosmtpd), chooses a password, signs in and finds the subscription and its first
invoice. The same walk with a declining card creates nothing and sends nothing; with a promotion code
the discount is applied live and billed. Every page on the way passes axe-core."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from billing.checkout.models import CheckoutSession
from billing.models import Coupon, Price, PromotionCode, Subscription
from billing.storefront.services import TableEntrySpec, pricing_table_create
from customers.models import Customer
from invoices.models import Invoice
from tests.browser.axe import assert_accessible
from tests.smtp import smtp_inbox

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
MONTH = {"kind": "interval", "unit": "month", "count": 1}
YEAR = {"kind": "interval", "unit": "year", "count": 1}
PASSWORD = "Croissant-au-beurre-2026"


@pytest.fixture
def inbox(settings):
    yield from smtp_inbox(settings)


@pytest.fixture
def shop(live_server, settings, brand_factory, product_factory, tax_rate_factory):
    settings.TARIF_BASE_URL = live_server.url
    settings.TARIF_CHECKOUT_MIN_FILL_SECONDS = 0
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    brand = brand_factory(slug="nuage", name="Atelier Nuage", is_default=True, primary_colour="#2851a3")
    starter = product_factory(name="Starter")
    monthly = Price.objects.create(product=starter, currency="EUR", unit_amount=Decimal(1500), cycle=MONTH)
    yearly = Price.objects.create(product=starter, currency="EUR", unit_amount=Decimal(15000), cycle=YEAR)
    table = pricing_table_create(
        brand=brand,
        livemode=True,
        name="Plans",
        entries=[TableEntrySpec(monthly_price=monthly, yearly_price=yearly, features=("Email support",))],
        allow_promotion_codes=True,
    )
    coupon = Coupon.objects.create(name="Bienvenue", percent_off=Decimal(20), duration="forever")
    PromotionCode.objects.create(coupon=coupon, code="BIENVENUE")
    return {"table": table, "monthly": monthly}


def start_from_the_pricing_table(page: Page, live_server, table) -> None:
    page.goto(f"{live_server.url}/pricing/{table.public_id}/")
    assert_accessible(page, name="pricing table")
    page.locator(".panel-month .plan-card").first.get_by_role("button").click()
    expect(page).to_have_url(re.compile(r"/checkout/cs_\w+/$"))


def fill_business(page: Page, *, name: str, email_address: str, country: str, vat_number: str) -> None:
    page.locator("input[name=customer_type][value=business]").check()
    page.fill("#id_legal_name", name)
    page.fill("#id_email", email_address)
    page.select_option("#id_country", country)
    page.fill("#id_tax_id", vat_number)


def pay_with(page: Page, number: str) -> None:
    page.locator("button.pay").click()
    page.wait_for_url("**/sandbox/checkout/**")
    page.fill("#id_number", number)
    page.fill("#id_exp_month", "12")
    page.fill("#id_exp_year", "2034")
    page.fill("#id_cvc", "123")
    page.locator("#sandbox-card-form button[type=submit]").click()


def test_visitor_buys_a_plan_receives_the_invitation_signs_in_and_sees_it(live_server, page: Page, shop, inbox):
    start_from_the_pricing_table(page, live_server, shop["table"])
    assert_accessible(page, name="checkout page")

    # A Belgian business number first: reverse charge, no VAT on 15,00 €.
    fill_business(
        page, name="Brasserie Zenne BV", email_address="compta@boulangerie.example", country="BE", vat_number=""
    )
    page.fill("#id_tax_id", "BE0403019261")
    expect(page.locator("#summary-tax")).to_contain_text("Autoliquidation")
    expect(page.locator("#summary-total")).to_contain_text("15,00")
    # Then the buyer's real, French number: French VAT at 20 %, 18,00 € due today.
    fill_business(
        page, name="Boulangerie Martin SARL", email_address="compta@boulangerie.example", country="FR", vat_number=""
    )
    page.fill("#id_tax_id", "FR40303265045")
    expect(page.locator("#summary-tax")).to_contain_text("3,00")
    expect(page.locator("#summary-total")).to_contain_text("18,00")
    assert_accessible(page, name="checkout page with the French total")

    pay_with(page, "4242424242424242")

    page.wait_for_url(re.compile(r"/storefront/thanks/\?session_id=cs_"))
    assert_accessible(page, name="success page")
    session = CheckoutSession.objects.get()
    assert session.status == "complete"
    customer = Customer.objects.get()
    assert (customer.legal_name, customer.country, customer.tax_id) == (
        "Boulangerie Martin SARL",
        "FR",
        "FR40303265045",
    )
    first_invoice = Invoice.objects.get(customer=customer)
    assert (first_invoice.total, first_invoice.status) == (1800, Invoice.Status.PAID)

    invitation = inbox.wait_for("compta@boulangerie.example")
    body = invitation.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"https?://\S+/accounts/password/reset/key/\S+", body)
    assert link is not None, body

    page.goto(link.group(0))
    assert_accessible(page, name="choose your password")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.goto(f"{live_server.url}/portal/")
    if page.locator("#id_login").count():
        page.fill("#id_login", "compta@boulangerie.example")
        page.fill("#id_password", PASSWORD)
        page.locator("form button[type=submit]").last.click()

    expect(page.get_by_text("Starter").first).to_be_visible()
    assert_accessible(page, name="portal home after checkout")
    page.goto(f"{live_server.url}/portal/invoices/")
    expect(page.get_by_text(first_invoice.number)).to_be_visible()
    expect(page.get_by_text("18,00").first).to_be_visible()


def test_a_declining_card_is_refused_and_nothing_is_created_or_sent(live_server, page: Page, shop, inbox):
    start_from_the_pricing_table(page, live_server, shop["table"])
    fill_business(
        page, name="Boulangerie Martin SARL", email_address="compta@boulangerie.example", country="FR", vat_number=""
    )
    page.fill("#id_tax_id", "FR40303265045")
    expect(page.locator("#summary-total")).to_contain_text("18,00")

    pay_with(page, "4000000000000002")

    expect(page.locator("#decline-message")).to_be_visible()
    assert_accessible(page, name="checkout page after a decline")
    assert not Customer.objects.exists() and not Subscription.objects.exists() and not Invoice.objects.exists()
    assert CheckoutSession.objects.get().status == "open"
    time.sleep(1)
    assert inbox.messages == []


def test_a_promotion_code_is_applied_live_and_billed(live_server, page: Page, shop, inbox):
    start_from_the_pricing_table(page, live_server, shop["table"])
    fill_business(
        page, name="Boulangerie Martin SARL", email_address="compta@boulangerie.example", country="FR", vat_number=""
    )
    page.fill("#id_tax_id", "FR40303265045")
    page.fill("#id_promotion_code", "NOPE")
    expect(page.locator("#summary-promotion-error")).to_be_visible()
    page.fill("#id_promotion_code", "BIENVENUE")
    # 15,00 € − 20 % = 12,00 €, plus 20 % VAT: 14,40 €.
    expect(page.locator("#summary-discount")).to_contain_text("3,00")
    expect(page.locator("#summary-total")).to_contain_text("14,40")
    assert_accessible(page, name="checkout page with a promotion code")

    pay_with(page, "4242424242424242")

    page.wait_for_url(re.compile(r"/storefront/thanks/\?session_id=cs_"))
    invoice = Invoice.objects.get()
    assert (invoice.total, invoice.status) == (1440, Invoice.Status.PAID)
    assert Subscription.objects.get().discounts.filter(end__isnull=True).get().coupon.name == "Bienvenue"
    assert PromotionCode.objects.get(code="BIENVENUE").times_redeemed == 1
    inbox.wait_for("compta@boulangerie.example")
