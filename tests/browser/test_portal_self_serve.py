"""Issue 17 in a real browser: the sign-in pages in the portal's design (no sign-up link, sign-in
by emailed code), plan cards and the confirmation step, a declining card refused, starting a
subscription when none is active; axe-core on every page, screenshots at 1366 px."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from billing.entitlements.models import Feature, ProductFeature
from billing.models import PaymentMethod, Subscription
from billing.services.subscriptions import subscription_cancel
from tests.browser.axe import assert_accessible
from tests.browser.test_portal import PASSWORD, account, emailed_code  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = Path("/tmp/portal-shots")


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1366, "height": 900}}


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def check(page: Page, name: str) -> None:
    assert_accessible(page, name=name)
    shot(page, name)


def sign_in_with_password(page: Page, live_server) -> None:
    page.goto(f"{live_server.url}/portal/")
    page.fill("#id_login", "anna@client.example")
    page.fill("#id_password", PASSWORD)
    page.click("#sign-in")


def test_sign_in_pages_are_branded_accessible_and_offer_a_code(live_server, page: Page, account):  # noqa: F811
    page.goto(f"{live_server.url}/portal/")  # French browser: the French page
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator("#id_password_helptext")).to_contain_text("Mot de passe oublié")
    expect(page.locator("a[href*='signup']")).to_have_count(0)
    check(page, "01_sign_in_fr")

    page.select_option("#language-select", "en")
    page.click("form.language button")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.click("#sign-in")  # empty form: errors tied to their fields
    expect(page.locator("#id_login")).to_have_attribute("aria-invalid", "true")
    check(page, "02_sign_in_errors_en")

    page.click("#id_password_helptext a")
    check(page, "03_password_reset")
    page.fill("#id_email", "nobody@nowhere.example")
    page.click("#password-reset-form button[type=submit]")
    expect(page.locator("#reset-sent")).to_be_visible()
    check(page, "04_password_reset_done")

    page.goto(f"{live_server.url}/accounts/login/")
    page.click("#login-by-code")
    check(page, "05_login_code_request")
    page.fill("#id_email", "anna@client.example")
    page.click("#request-code")
    expect(page.locator("#confirm-code-form")).to_be_visible()
    check(page, "06_login_code_confirm")
    code = re.search(r"^\s*([A-Z0-9]{3,}(?:-[A-Z0-9]{3,})*)\s*$", mail.outbox[-1].body, re.MULTILINE).group(1)
    page.fill("#id_code", code)
    page.click("#confirm-code")

    expect(page.locator("h1")).to_have_text("Overview")
    check(page, "07_portal_home")


def test_plan_change_through_cards_and_a_confirmation(live_server, page: Page, account):  # noqa: F811
    sso = Feature.objects.create(lookup_key="sso", name="Single sign-on")
    ProductFeature.objects.create(product=account["pro"].product, feature=sso)
    sign_in_with_password(page, live_server)
    page.goto(f"{live_server.url}/portal/subscriptions/{account['subscription'].pk}/change/")

    pro = page.locator(f"#plan-{account['pro'].pk}")
    expect(pro).to_contain_text("€79.00")
    expect(pro).to_contain_text("Adds Single sign-on")
    expect(page.locator(".plan-card.current")).to_contain_text("Your current plan")
    check(page, "10_change_cards")
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.locator(".skip-link")).to_be_focused()

    page.click(f"#plan-{account['pro'].pk}")
    page.fill("#id_quantity", "2")
    page.click("#review-change")
    expect(page.locator("#charged-now")).to_contain_text("Charged now")
    expect(page.locator("#next-invoice")).to_contain_text("tax included")
    check(page, "11_change_confirm")

    page.click("#confirm-change")
    expect(page.locator("#new-plan")).to_contain_text("Pro")
    check(page, "12_change_done")


def test_a_declining_card_is_refused_in_plain_words(live_server, page: Page, account):  # noqa: F811
    sign_in_with_password(page, live_server)
    page.goto(f"{live_server.url}/portal/payment-methods/card/")
    page.fill("#id_otp_token", emailed_code())
    page.click("#step-up-form button[type=submit]")
    expect(page.locator("#id_make_default")).not_to_be_checked()
    check(page, "20_add_card")
    page.click("#start-card-setup button")
    page.fill("#id_number", "4000 0000 0000 9995")
    page.fill("#id_exp_month", "11")
    page.fill("#id_exp_year", "2032")
    page.fill("#id_cvc", "123")
    page.click("#sandbox-card-form button[type=submit]")

    expect(page.locator(".messages")).to_contain_text("not enough funds")
    expect(page.locator("#payment-methods")).not_to_contain_text("9995")
    assert not PaymentMethod.objects.filter(last4="9995").exists()
    check(page, "21_card_declined")


def test_start_a_subscription_when_none_is_active(live_server, page: Page, account):  # noqa: F811
    subscription_cancel(subscription=account["subscription"], at_period_end=False)
    sign_in_with_password(page, live_server)

    expect(page.locator("#start-subscription")).to_be_visible()
    check(page, "30_home_no_subscription")
    page.click(f"#plan-{account['pro'].pk}")
    page.click("#start-review")
    page.fill("#id_otp_token", emailed_code())
    page.click("#step-up-form button[type=submit]")
    expect(page.locator(f"#price-{account['pro'].pk}")).to_be_checked()  # the choice survived the step-up
    check(page, "30b_subscribe_cards")
    page.click("#start-review")
    expect(page.locator("#confirm-due-now")).to_contain_text("€94.80")  # 79.00 + 20 % VAT
    check(page, "31_subscribe_confirm")
    page.click("#confirm-subscribe")

    expect(page.locator("#first-invoice")).to_be_visible()
    assert Subscription.objects.filter(customer=account["customer"], status="active").count() == 1
    check(page, "32_subscription_started")


def test_a_light_brand_colour_still_passes_the_contrast_checks(live_server, page: Page, account):  # noqa: F811
    brand = account["customer"].brand
    brand.primary_colour = "#f0d000"
    brand.save(update_fields=["primary_colour"])

    page.goto(f"{live_server.url}/accounts/login/")
    assert_accessible(page, name="sign-in, light brand")
    sign_in_with_password(page, live_server)
    page.goto(f"{live_server.url}/portal/subscriptions/{account['subscription'].pk}/change/")
    check(page, "13_change_cards_light_brand")


PORTAL_PAGES = [
    ("40_invoices", "/portal/invoices/"),
    ("41_usage", "/portal/usage/"),
    ("42_credits", "/portal/credits/"),
    ("43_payment_methods", "/portal/payment-methods/"),
    ("44_details", "/portal/details/"),
    ("45_security", "/portal/security/"),
    ("46_bank_transfer", "/portal/payment-methods/bank-transfer/"),
]


def test_every_portal_page_passes_the_accessibility_checks(live_server, page: Page, account):  # noqa: F811
    sign_in_with_password(page, live_server)
    expect(page.locator("h1")).to_have_text("Overview")
    for name, path in PORTAL_PAGES:
        page.goto(f"{live_server.url}{path}")
        check(page, name)
    page.goto(f"{live_server.url}/portal/invoices/{account['invoice'].pk}/")
    check(page, "47_invoice_detail")
    page.goto(f"{live_server.url}/portal/subscriptions/{account['subscription'].pk}/cancel/")
    check(page, "48_step_up")
    page.fill("#id_otp_token", "000000")
    page.click("#step-up-form button[type=submit]")
    expect(page.locator("#id_otp_token")).to_have_attribute("aria-invalid", "true")
    check(page, "49_step_up_error")
