"""In a real browser (French, 1366 px), a second finance user approves a refund another asked
for, then imports a bank statement: formatted preview, confirm, match an unmatched line with
the invoice the console suggests. Screenshots land in the test's artefacts directory."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from billing.models import BankStatementLine, Payment, Refund
from billing.services.dunning import invoices_collect
from billing.services.payments import payment_method_attach
from billing.services.refunds import refund_request
from billing.services.subscriptions import ItemSpec, subscription_create
from tests.billing.services.conftest import billing_brand, make_customer, make_price  # noqa: F401 (fixtures)
from tests.browser.steps.money import approve_refund, import_bank_statement, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser" / "money"


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "locale": "fr-FR", "viewport": {"width": 1366, "height": 768}}


@pytest.fixture
def finance(staff_factory):
    """finance(username) -> (user, TOTP secret in base32) for a member of the Finance role."""

    def make(username: str):
        user = staff_factory(username=username, first_name=username.capitalize())
        user.groups.add(Group.objects.get(name="Finance"))
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        return user, base64.b32encode(bytes.fromhex(device.key)).decode()

    return make


@pytest.fixture
def money_world(finance, make_customer, make_price, settings):  # noqa: F811 (fixtures)
    """A card payment of 34.80 EUR with a 30.00 EUR refund alice asked for (above the approval
    threshold), and another customer's open 34.80 EUR invoice awaiting a transfer."""
    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 1000
    alice, _ = finance("alice")
    now = timezone.now()
    paying = make_customer(legal_name="Boulangerie Martin")
    payment_method_attach(
        customer=paying, source={"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "1"}}
    )
    subscription = subscription_create(customer=paying, items=[ItemSpec(make_price(2900))], at=now)
    invoices_collect(invoice_ids=[subscription.invoices.get().pk])
    payment = Payment.objects.get(status=Payment.Status.SUCCEEDED)
    refund = refund_request(
        payment=payment, amount=3000, reason="other", memo="", requested_by=alice, otp_verified_at=now
    )
    assert refund.status == Refund.Status.REQUESTED
    transferring = make_customer(legal_name="Café des Arts")
    later = subscription_create(
        customer=transferring,
        items=[ItemSpec(make_price(2900))],
        at=now,
        collection_method="send_invoice",
        days_until_due=30,
    )
    return refund, later.invoices.get()


def sign_in(page: Page, base_url: str, username: str, secret: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.locator("input[name=password]").press("Enter")
    page.wait_for_url(re.compile("/admin/otp/"))
    page.fill("input[name=otp_token]", totp_code(secret, steps_ahead=0))
    page.locator("input[name=otp_token]").press("Enter")
    page.wait_for_url(re.compile(r"/admin/(?!login|otp)"))


def test_a_second_finance_user_approves_a_refund_then_imports_a_statement(
    live_server, page: Page, finance, money_world, tmp_path
):
    refund, open_invoice = money_world
    console_errors: list[str] = []
    not_found: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("response", lambda response: not_found.append(response.url) if response.status >= 400 else None)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)

    def shots(name: str) -> None:
        page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)

    _bruno, secret = finance("bruno")
    sign_in(page, live_server.url, "bruno", secret)

    shown = approve_refund(page, live_server.url, shots, totp_secret=secret)

    refund.refresh_from_db()
    assert shown == "30,00\xa0€"
    assert refund.status == Refund.Status.EXECUTED and refund.decided_by.username == "bruno"

    statement = tmp_path / "releve.csv"
    statement.write_text(
        "booking_date;amount;currency;remittance_info;debtor_name;entry_reference\n"
        "2026-03-05;34,80;EUR;VIREMENT SANS REFERENCE;CAFE DES ARTS;BQ-0042\n",
        encoding="utf-8",
    )
    import_bank_statement(page, live_server.url, statement, shots)

    suggestion = page.locator("a.tarif-suggestion", has_text=open_invoice.number)
    expect(suggestion).to_contain_text("34,80")
    suggestion.click()
    expect(page.locator("input[name=invoice_number]")).to_have_value(open_invoice.number)
    page.locator("#content-main form button[type=submit], #content-main form input[type=submit]").first.click()
    page.wait_for_load_state()
    shots("bank_line_matched")

    line = BankStatementLine.objects.get()
    open_invoice.refresh_from_db()
    assert line.status == BankStatementLine.Status.MANUALLY_MATCHED and open_invoice.status == "paid"
    # Every script ran (CSP included); a failed load is reported with its URL when the page asked
    # for it (the browser's own favicon request, outside the page, is not).
    assert not [error for error in console_errors if not error.startswith("Failed to load resource")], console_errors
    assert not not_found, not_found
