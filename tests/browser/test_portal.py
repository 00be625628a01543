"""A customer uses the billing portal in a real browser (Playwright + Debian's Chromium)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from billing.models import Price, Subscription
from billing.services.dunning import invoices_collect
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_create
from customers.models import CustomerUser
from feedback.models import Choice, Question, Survey, SurveyResponse, Trigger
from invoices.models import Invoice
from tests.conftest import current_totp

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def account(brand_factory, tax_rate_factory, customer_factory, product_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    brand = brand_factory(slug="atelier", is_default=True, primary_colour="#7a1f5c")
    monthly = {"kind": "interval", "unit": "month", "count": 1}
    starter = Price.objects.create(
        product=product_factory(name="Starter"), currency="EUR", unit_amount=Decimal(2900), cycle=monthly
    )
    pro = Price.objects.create(
        product=product_factory(name="Pro"), currency="EUR", unit_amount=Decimal(7900), cycle=monthly
    )
    customer = customer_factory(brand=brand, email="anna@client.example", preferred_language="en", timezone="UTC")
    user = get_user_model().objects.create_user(username="anna", email="anna@client.example", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    CustomerUser.objects.create(user=user, customer=customer)
    payment_method_attach(
        customer=customer, source={"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031}}
    )
    subscription = subscription_create(customer=customer, items=[ItemSpec(starter, 1)])
    invoice = subscription.invoices.get()
    invoices_collect(invoice_ids=[invoice.pk])
    invoice.refresh_from_db()
    return {"customer": customer, "user": user, "invoice": invoice, "pro": pro, "subscription": subscription}


def sign_in(page: Page, live_server) -> None:
    page.goto(f"{live_server.url}/portal/")
    page.fill("#id_login", "anna@client.example")
    page.fill("#id_password", PASSWORD)
    page.locator("form button[type=submit]").last.click()


def format_money_en(amount: int) -> str:
    from invoices.rendering.formatting import money

    return money(amount, "EUR", "en").replace("\u202f", " ").replace("\xa0", " ")


def emailed_code() -> str:
    return re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)


def test_totp_login_invoices_pdf_and_a_plan_change_with_live_preview(live_server, page: Page, account):
    device = TOTPDevice.objects.create(user=account["user"], name="phone", confirmed=True)
    sign_in(page, live_server)

    expect(page.locator("#login-verify-form")).to_be_visible()
    page.fill("#id_otp_token", current_totp(device))
    page.click("#login-verify-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator(".portal-header")).to_be_visible()

    page.click("text=Invoices")
    number = account["invoice"].number
    expect(page.locator("#invoice-list")).to_contain_text(number)
    page.click(f"text={number}")
    with page.expect_download() as download:
        page.click("#download-pdf")
    assert download.value.suggested_filename == f"{number}.pdf"

    page.goto(f"{live_server.url}/portal/subscriptions/{account['subscription'].pk}/change/")
    expect(page.locator(f"#plan-{account['pro'].pk}")).to_contain_text("79.00")  # a card with its price
    page.click(f"#plan-{account['pro'].pk}")  # the whole card is the radio's label
    page.fill("#id_quantity", "3")
    page.click("#review-change")
    expect(page.locator("#plan-after")).to_contain_text("× 3")
    due_now = page.locator("#confirm-due-now").inner_text()
    page.click("#confirm-change")

    expect(page.locator("#new-plan")).to_contain_text("Pro")
    expect(page.locator("#new-plan")).to_contain_text("× 3")
    expect(page.locator("#proration-lines tbody tr")).to_have_count(2)
    expect(page.locator("#proration-lines")).to_contain_text("Unused time on")
    charged = Invoice.objects.filter(subscription=account["subscription"]).order_by("-pk").first()
    assert due_now.replace("\u202f", " ").replace("\xa0", " ") == format_money_en(charged.amount_due)


def test_cancel_through_the_reason_form_after_an_emailed_code(live_server, page: Page, account):
    sign_in(page, live_server)
    expect(page.locator("h1")).to_have_text("Overview")

    page.click("text=Cancel subscription")
    expect(page.locator("#step-up")).to_be_visible()
    page.fill("#id_otp_token", emailed_code())
    page.click("#step-up-form button[type=submit]")
    expect(page.locator("#cancel-form")).to_be_visible()
    page.click("#confirm-cancel")
    expect(page.locator("#cancel-form")).to_be_visible()  # a reason is required: nothing was sent
    page.check("input[name=reason][value=too_expensive]")
    page.fill("textarea[name=comment]", "Budget cuts")
    page.click("#confirm-cancel")

    expect(page.locator(".messages")).to_contain_text("will end with the current period")
    expect(page.locator(f"#subscription-{account['subscription'].pk}")).to_contain_text("Ends on")


def test_cancel_through_the_cancellation_survey(live_server, page: Page, account):
    survey = Survey.objects.create(
        name="Churn", trigger=Trigger.CANCELLATION, title_fr="Avant de partir", title_en="Before you go"
    )
    nps = Question.objects.create(
        survey=survey, kind=Question.Kind.NPS, text_fr="Nous recommanderiez-vous ?", text_en="Would you recommend us?"
    )
    reason = Question.objects.create(
        survey=survey, kind=Question.Kind.SINGLE, text_fr="Raison principale", text_en="Main reason", position=1
    )
    Choice.objects.create(question=reason, code="too_expensive", label_fr="Trop cher", label_en="Too expensive")
    Choice.objects.create(question=reason, code="switching", label_fr="Autre outil", label_en="Another tool")
    sign_in(page, live_server)
    page.click("text=Cancel subscription")
    page.fill("#id_otp_token", emailed_code())
    page.click("#step-up-form button[type=submit]")

    expect(page.locator("#survey-title")).to_have_text("Before you go")  # the customer's language
    expect(page.locator("#cancel-form")).to_contain_text("Would you recommend us?")
    page.click("#confirm-cancel")
    expect(page.locator("#cancel-form .error-summary")).to_contain_text("Would you recommend us?")
    assert Subscription.objects.get(pk=account["subscription"].pk).cancel_at_period_end is False

    page.click(f"label[for=survey{survey.pk}_q_{nps.pk}_6]")  # the "6" button of the 0-10 scale
    page.get_by_label("Another tool").check()
    page.click("#confirm-cancel")

    expect(page.locator(".messages")).to_contain_text("will end with the current period")
    response = SurveyResponse.objects.get()
    assert response.subscription_id == account["subscription"].pk and response.trigger == Trigger.CANCELLATION
    assert response.answers.get(question=nps).score == 6
    assert list(response.answers.get(question=reason).choices.values_list("code", flat=True)) == ["switching"]
    assert Subscription.objects.get(pk=account["subscription"].pk).cancellation_reason == "switching"


def test_adding_a_card_asks_for_step_up_then_walks_the_sandbox_checkout(live_server, page: Page, account):
    sign_in(page, live_server)
    page.click("text=Payment methods")
    page.click("#add-card")

    expect(page.locator("#step-up")).to_be_visible()  # the step-up prompt comes first
    page.fill("#id_otp_token", emailed_code())
    page.click("#step-up-form button[type=submit]")
    page.check("#id_make_default")  # unticked: the customer has a default card already
    page.click("#start-card-setup button")

    expect(page).to_have_url(re.compile(r"/sandbox/checkout/cs_sandbox_"))
    page.fill("#id_number", "5555 5555 5555 4444")
    page.fill("#id_exp_month", "11")
    page.fill("#id_exp_year", "2032")
    page.fill("#id_cvc", "123")
    page.click("#sandbox-card-form button[type=submit]")

    expect(page).to_have_url(f"{live_server.url}/portal/payment-methods/")
    expect(page.locator(".messages")).to_contain_text("4444")
    expect(page.locator("#payment-methods tr").first).to_contain_text("mastercard •••• 4444")
    expect(page.locator("#payment-methods tr").first.locator(".default-method")).to_be_visible()
