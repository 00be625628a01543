"""The console's home in a real browser: a finance user signs in with TOTP, lands on the
dashboard, finds a customer with the command search (Ctrl-K) and opens their page; the
header's language switch turns the console French and back, staying on the page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from billing.services.dunning import invoices_collect
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_create
from tests.billing.services.conftest import billing_brand, make_customer, make_price  # noqa: F401 (fixtures)
from tests.browser.steps.home import open_dashboard, search_and_open_customer, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Next to pytest-playwright's own artefacts (traces, videos): test-results/ (git-ignored).
SHOTS = Path("test-results") / "console" / "home"


@pytest.fixture
def finance(staff_factory):
    user = staff_factory(username="camille")
    user.groups.add(Group.objects.get(name="Finance"))
    return user, TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


@pytest.fixture
def shots(page: Page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    return lambda name: page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def console_errors(page: Page):
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_finance_signs_in_sees_the_dashboard_and_finds_a_customer(
    live_server,
    page: Page,
    finance,
    make_customer,  # noqa: F811
    make_price,  # noqa: F811
    shots,
    console_errors,
):
    page.set_viewport_size({"width": 1366, "height": 768})
    customer = make_customer(legal_name="Boulangerie Martin SARL")
    payment_method_attach(
        customer=customer, source={"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}
    )
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoices_collect(invoice_ids=list(subscription.invoices.values_list("pk", flat=True)))
    make_customer(legal_name="Fromagerie Dupont")
    user, device = finance

    sign_in(page, live_server.url, user.username, "correct horse battery staple", device)
    open_dashboard(page, live_server.url, shots)
    expect(page.locator("#tarif-home-mrr canvas.chart")).to_be_visible()
    expect(page.locator("#kpi-subscriptions")).to_contain_text("1")
    # The counts' time (issue 20), in the page's language: the note names it, with its instant.
    as_of = page.locator("#tarif-home-as-of time")
    expect(as_of).to_contain_text(re.compile(r"\d{1,2}:\d{2}"))
    assert as_of.get_attribute("datetime")
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    search_and_open_customer(page, live_server.url, "boulang", shots)

    expect(page.locator("body")).to_contain_text("Boulangerie Martin SARL")
    page.goto(f"{live_server.url}/admin/")
    page.keyboard.press("Control+k")  # the shortcut opens the same search
    expect(page.locator("#search-input-command")).to_be_visible()
    assert console_errors == []


def test_the_header_language_switch_turns_the_console_french_and_back_on_the_same_page(
    live_server, page: Page, finance, console_errors
):
    user, device = finance
    sign_in(page, live_server.url, user.username, "correct horse battery staple", device)
    page.goto(f"{live_server.url}/admin/invoices/invoice/?status__exact=open")

    for language, word in (("en", "Invoices"), ("fr", "Factures"), ("en", "Invoices")):
        switch = page.locator(f"form[action='/i18n/setlang/']:has(input[name=language][value={language}]) button")
        with page.expect_navigation():
            # The header's account menu holds the switch; its buttons are plain form submits.
            switch.dispatch_event("click")
        expect(page).to_have_url(f"{live_server.url}/admin/invoices/invoice/?status__exact=open")
        assert page.locator("html").get_attribute("lang") == language
        expect(page.locator("body")).to_contain_text(word)
    assert console_errors == []
