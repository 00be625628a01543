"""The operator console for the catalog, subscriptions, usage, billing runs and test clocks."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import tablib
import time_machine
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from billing.models import (
    BankStatement,
    BankStatementLine,
    BillingRun,
    Coupon,
    DunningCase,
    InvoiceItem,
    Payment,
    PaymentMethod,
    Price,
    PromotionCode,
    Refund,
    ScheduledChange,
    Subscription,
    SubscriptionChange,
    SubscriptionItem,
    TestClock,
    UsageEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from billing.stripe_import_models import StripeImportRun
from config.events.models import DomainEvent, EventCursor
from config.modes import is_mode_scoped, object_livemode
from invoices.models import Invoice
from tests.conftest import current_totp

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
MONTHLY = {"kind": "interval", "unit": "month", "count": 1}


@pytest.fixture
def subscription(customer_factory, price_factory):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    sub = Subscription.objects.create(
        customer=customer_factory(legal_name="Abonnée SARL"),
        status=Subscription.Status.ACTIVE,
        currency="EUR",
        cycle=MONTHLY,
        billing_cycle_anchor=start,
        current_period_start=start,
        current_period_end=datetime(2026, 2, 1, tzinfo=UTC),
    )
    SubscriptionItem.objects.create(subscription=sub, price=price_factory(lookup_key="pro-monthly"), quantity=3)
    return sub


@pytest.fixture
def billing_world(subscription, meter_factory, price_factory):
    """One row of every billing model, so every change page has something to show."""
    customer = subscription.customer
    meter = meter_factory(key="api_calls")
    price_factory(lookup_key="api-metered", usage_type=Price.UsageType.METERED, meter=meter, unit_amount=Decimal("0.5"))
    coupon = Coupon.objects.create(name="Bienvenue", percent_off=Decimal(10))
    PromotionCode.objects.create(coupon=coupon, code="WELCOME10")
    at = subscription.current_period_start
    SubscriptionChange.objects.create(subscription=subscription, kind=SubscriptionChange.Kind.CREATE, effective_at=at)
    ScheduledChange.objects.create(
        subscription=subscription,
        effective_at=subscription.current_period_end,
        items=[{"price": subscription.items.get().price_id, "quantity": 1}],
    )
    UsageEvent.objects.create(customer=customer, meter=meter, external_id="evt-1", value=Decimal(3), timestamp=at)
    InvoiceItem.objects.create(customer=customer, description="Setup fee", amount=15000, currency="EUR")
    BillingRun.objects.create(as_of=at, total=10, processed=4)
    TestClock.objects.create(name="Demo clock", frozen_time=at)
    DomainEvent.objects.create(
        type="customer.subscription.created", object_type="subscription", object_id=str(subscription.pk), occurred_at=at
    )
    # payments: a card, a charge attempt, its dunning case and a refund request
    invoice = Invoice.objects.create(brand=customer.brand, customer=customer, currency="EUR", subscription=subscription)
    card = PaymentMethod.objects.create(
        customer=customer,
        kind="card",
        gateway="sandbox",
        token="pm_sandbox_x",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2030,
        is_default=True,
    )
    payment = Payment.objects.create(
        invoice=invoice,
        customer=customer,
        payment_method=card,
        method="card",
        gateway="sandbox",
        status=Payment.Status.SUCCEEDED,
        amount=3480,
        currency="EUR",
        attempt=1,
        attempted_at=at,
    )
    DunningCase.objects.create(invoice=invoice, customer=customer, started_at=at, schedule_days=[1, 3])
    Refund.objects.create(payment=payment, invoice=invoice, amount=500, currency="EUR", reason="other", requested_at=at)
    # bank reconciliation: a statement with a matched line (linked to the payment) and an unmatched one
    statement = BankStatement.objects.create(
        account="IBAN-0189", statement_id="STMT-1", source_format="camt053", file_checksum="0" * 64, imported_at=at
    )
    matched = BankStatementLine.objects.create(
        statement=statement, sequence=1, fingerprint="a" * 64, booking_date=at.date(), amount=3480, currency="EUR",
        remittance_info="RF21TARIF00004201", status=BankStatementLine.Status.MATCHED, customer=customer,
    )  # fmt: skip
    matched.payments.add(payment)
    BankStatementLine.objects.create(
        statement=statement, sequence=2, fingerprint="b" * 64, booking_date=at.date(), amount=1200, currency="EUR",
        remittance_info="?", status_reason="No payment reference and no invoice number in the text.",
    )  # fmt: skip
    # webhooks: an endpoint, one delivery of the event above and a failed attempt
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/tarif", secret="whsec_test")
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event=DomainEvent.objects.get(), object_key=f"subscription:{subscription.pk}"
    )
    WebhookAttempt.objects.create(delivery=delivery, attempted_at=at, status_code=500, error="HTTP 500")
    EventCursor.objects.create(name="notifications", last_event_id=delivery.event_id)
    StripeImportRun.objects.create(account_id="acct_1Example", livemode=False, status="done", key_hint="sk_test_…6789")
    return subscription


BILLING_MODELS = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "billing"), key=lambda m: m.__name__
)


@pytest.mark.parametrize("model", BILLING_MODELS, ids=lambda model: model.__name__)
def test_every_billing_page_of_the_console_renders(console, billing_world, model):
    opts = model._meta
    model_admin = admin.site._registry[model]
    instance = model.objects.order_by("pk").first()
    assert instance is not None, f"the world fixture should create a {opts.model_name}"
    if is_mode_scoped(model) and not object_livemode(instance):
        console.post(reverse("admin:test_data"), {"test_data": "on"})  # test clocks live in the test data view

    changelist = console.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    change = console.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[instance.pk]))
    add = console.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))

    assert changelist.status_code == 200
    assert change.status_code == 200
    request = changelist.wsgi_request
    assert add.status_code == (200 if model_admin.has_add_permission(request) else 403)


def test_the_console_is_closed_without_the_second_factor(client, staff_with_totp, billing_world):
    user, _device = staff_with_totp
    client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
    run = BillingRun.objects.get()

    for url in (
        reverse("admin:billing_price_changelist"),
        reverse("admin:billing_billingrun_progress", args=[run.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("admin:login") in response["Location"]


# -- catalog -------------------------------------------------------------------------------


def test_prices_show_their_amount_as_money(console, price_factory):
    price_factory(nickname="Pro mensuel", unit_amount=Decimal(123456))
    price_factory(nickname="API", unit_amount=Decimal("0.5"))

    page = console.get(reverse("admin:billing_price_changelist"), HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert "1\u202f234,56\xa0€" in page
    assert "0,005\xa0€" in page


def test_a_used_price_keeps_its_terms_but_its_nickname_and_active_flag_stay_editable(console, subscription):
    price = subscription.items.get().price
    url = reverse("admin:billing_price_change", args=[price.pk])

    page = console.get(url).content.decode()
    fields = {
        "product": price.product_id,
        "nickname": "Pro (legacy)",
        "lookup_key": price.lookup_key,
        "trial_days": "0",
        "metadata": "{}",
    }
    # A term posted anyway (a page opened before the price was used) is refused, not dropped.
    refused = console.post(url, {**fields, "unit_amount": "1"})
    response = console.post(url, fields)

    assert 'name="unit_amount"' not in page and 'name="currency"' not in page and 'name="cycle"' not in page
    assert 'name="nickname"' in page and 'name="active"' in page
    assert refused.status_code == 200 and "archive it and create a new one" in refused.content.decode()
    assert response.status_code == 302
    price.refresh_from_db()
    assert price.nickname == "Pro (legacy)"
    assert price.active is False  # unchecked box: archived
    assert price.unit_amount == Decimal(2900)


def test_an_unused_price_can_change_its_terms_and_the_cycle_reads_like_a_sentence(console, price_factory):
    price = price_factory(lookup_key="starter")
    url = reverse("admin:billing_price_change", args=[price.pk])

    response = console.post(
        url,
        {
            "product": price.product_id,
            "lookup_key": "starter",
            "active": "on",
            "currency": "EUR",
            "type": "recurring",
            "scheme": "per_unit",
            "unit_amount": "19",  # typed in euros (major units)
            "tiers": "",
            "package_size": "1",
            "package_rounding": "up",
            "cycle": "every 3 months",
            "usage_type": "licensed",
            "tax_behavior": "exclusive",
            "trial_days": "14",
            "metadata": "{}",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    price.refresh_from_db()
    assert price.unit_amount == Decimal(1900)
    assert price.cycle["unit"] == "month" and price.cycle["count"] == 3


def test_archiving_prices_sets_them_inactive(console, price_factory):
    prices = [price_factory(), price_factory()]

    response = console.post(
        reverse("admin:billing_price_changelist"),
        {"action": "archive", "_selected_action": [price.pk for price in prices]},
        follow=True,
    )

    assert "2 prices archived." in response.content.decode()
    assert not Price.objects.filter(active=True).exists()


PRICE_HEADERS = ["product", "nickname", "lookup_key", "currency", "type", "scheme", "unit_amount", "cycle"]


def _upload(dataset: tablib.Dataset, name: str = "prices.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, dataset.export("csv").encode(), content_type="text/csv")


def test_prices_import_from_a_spreadsheet(console, product_factory):
    product_factory(name="Nuage Pro")
    dataset = tablib.Dataset(headers=PRICE_HEADERS)
    dataset.append(["Nuage Pro", "Pro mensuel", "pro-monthly", "EUR", "recurring", "per_unit", "4900", "every month"])
    dataset.append(["Nuage Pro", "Pro annuel", "pro-yearly", "EUR", "recurring", "per_unit", "49000", "yearly"])

    preview = console.post(
        "/admin/billing/price/import/", {"import_file": _upload(dataset), "format": "0", "resource": "0"}
    )
    assert preview.status_code == 200
    confirm = preview.context["confirm_form"]
    done = console.post("/admin/billing/price/process_import/", {**confirm.initial})

    assert done.status_code == 302
    assert sorted(Price.objects.values_list("lookup_key", "unit_amount")) == [
        ("pro-monthly", Decimal(4900)),
        ("pro-yearly", Decimal(49000)),
    ]
    assert Price.objects.get(lookup_key="pro-yearly").cycle["unit"] == "year"


def test_a_price_import_with_one_bad_row_imports_nothing_and_says_why(console, product_factory):
    product_factory(name="Nuage Pro")
    dataset = tablib.Dataset(headers=PRICE_HEADERS)
    dataset.append(["Nuage Pro", "Pro mensuel", "pro-monthly", "EUR", "recurring", "per_unit", "4900", "every month"])
    dataset.append(["Nuage Pro", "Broken", "broken", "EUR", "recurring", "per_unit", "100", "every fortnight"])
    dataset.append(["Nuage Nope", "Orphan", "orphan", "EUR", "recurring", "per_unit", "100", "monthly"])

    response = console.post(
        "/admin/billing/price/import/", {"import_file": _upload(dataset), "format": "0", "resource": "0"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "Invalid billing cycle" in page and "every fortnight" in page
    assert "No product &#x27;Nuage Nope&#x27;." in page or "No product 'Nuage Nope'." in page
    assert "process_import" not in page and 'name="import_file_name"' not in page  # no confirm button
    assert Price.objects.count() == 0


def test_an_import_cannot_change_the_terms_of_a_used_price(subscription):
    from billing.resources import PriceResource

    price = subscription.items.get().price
    dataset = tablib.Dataset(headers=["id", *PRICE_HEADERS])
    dataset.append(
        [price.pk, price.product.name, "Pro", price.lookup_key, "EUR", "recurring", "per_unit", "9900", "every month"]
    )

    result = PriceResource().import_data(dataset, dry_run=False)

    assert result.has_validation_errors()
    message = " ".join(str(error) for row in result.invalid_rows for error in row.error.messages)
    assert "archive it and create a new one" in message and "unit_amount" in message
    price.refresh_from_db()
    assert price.unit_amount == Decimal(2900)


def test_prices_export_with_readable_columns(console, price_factory):
    price_factory(lookup_key="pro-monthly", product__name="Nuage Pro")

    response = console.post(
        "/admin/billing/price/export/",
        {
            "format": "0",
            "resource": "0",
            "priceresource_product": "on",
            "priceresource_lookup_key": "on",
            "priceresource_cycle": "on",
        },
    )

    # The console's export form (unfold's) exports every column: read the one row by header.
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert response.status_code == 200
    assert [(row["product"], row["lookup_key"], row["cycle"]) for row in rows] == [
        ("Nuage Pro", "pro-monthly", "every month")
    ]


# -- billing runs --------------------------------------------------------------------------


def test_the_billing_run_progress_endpoint_returns_json(console):
    run = BillingRun.objects.create(as_of=timezone.now(), total=200, processed=50, invoices_created=48)

    response = console.get(reverse("admin:billing_billingrun_progress", args=[run.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert {key: data[key] for key in ("processed", "total", "status", "percent")} == {
        "processed": 50,
        "total": 200,
        "status": "running",
        "percent": 25,
    }
    assert data["invoices_created"] == 48


def test_the_billing_run_list_shows_a_progress_bar_and_follows_running_runs(console):
    run = BillingRun.objects.create(as_of=timezone.now(), total=8, processed=2)

    listing = console.get(reverse("admin:billing_billingrun_changelist")).content.decode()
    page = console.get(reverse("admin:billing_billingrun_change", args=[run.pk])).content.decode()

    assert '<progress max="8" value="2">' in listing
    assert "tarif/admin/billing_run_progress.js" in listing and "tarif/admin/billing_run_progress.js" in page
    assert reverse("admin:billing_billingrun_progress", args=[run.pk]) in page
    assert 'data-status="running"' in page
    assert "<script>" not in page.replace("<script src", "")  # CSP: script-src 'self', no inline script


def test_run_billing_now_starts_a_billing_run(console, subscription, tax_rate):
    due = subscription.current_period_end + timedelta(hours=1)

    form = console.get(reverse("admin:billing_billingrun_run"))
    response = console.post(
        reverse("admin:billing_billingrun_run"), {"as_of": due.strftime("%Y-%m-%dT%H:%M:%S")}, follow=True
    )

    assert form.status_code == 200
    assert response.status_code == 200
    run = BillingRun.objects.get()
    assert run.as_of == due
    assert run.total == 1
    assert "Billing run started" in response.content.decode()


def test_the_billing_run_list_offers_run_billing_now(console):
    page = console.get(reverse("admin:billing_billingrun_changelist")).content.decode()

    assert reverse("admin:billing_billingrun_run") in page


# -- test clocks ---------------------------------------------------------------------------


def test_advancing_a_test_clock_asks_for_the_new_time_then_moves_it(console):
    clock = TestClock.objects.create(name="Scenario A", frozen_time=datetime(2026, 1, 1, tzinfo=UTC))
    console.post(reverse("admin:test_data"), {"test_data": "on"})  # test clocks live in the test data view

    asked = console.post(
        reverse("admin:billing_testclock_changelist"),
        {"action": "advance_clock", "_selected_action": [clock.pk]},
        follow=True,
    )
    form_url = asked.redirect_chain[-1][0]
    moved = console.post(form_url, {"to": "2026-03-01T00:00:00"}, follow=True)

    assert 'name="to"' in asked.content.decode()
    assert moved.status_code == 200
    clock.refresh_from_db()
    assert clock.frozen_time == datetime(2026, 3, 1, tzinfo=UTC)
    assert clock.status == TestClock.Status.READY
    assert "Scenario A advanced to" in moved.content.decode()
    assert BillingRun.objects.filter(test_clock=clock).exists()


def test_a_test_clock_cannot_be_moved_back(console):
    clock = TestClock.objects.create(name="Scenario B", frozen_time=datetime(2026, 6, 1, tzinfo=UTC))
    console.post(reverse("admin:test_data"), {"test_data": "on"})

    response = console.post(
        f"{reverse('admin:billing_testclock_advance')}?ids={clock.pk}", {"to": "2026-01-01T00:00:00"}
    )

    assert response.status_code == 200
    assert "only moves forward" in response.content.decode()
    clock.refresh_from_db()
    assert clock.frozen_time == datetime(2026, 6, 1, tzinfo=UTC)


# -- subscriptions -------------------------------------------------------------------------


def test_subscriptions_are_listed_with_their_items_and_current_period_and_can_be_filtered(console, subscription):
    page = console.get(reverse("admin:billing_subscription_changelist"), {"status__exact": "active"})
    none = console.get(reverse("admin:billing_subscription_changelist"), {"status__exact": "canceled"})
    found = console.get(reverse("admin:billing_subscription_changelist"), {"q": "Abonnée"})

    html = page.content.decode()
    product = subscription.items.get().price.product.name
    assert "Abonnée SARL" in html and f"{product} × 3" in html
    assert "1 Feb 2026" in html  # the current period's end, in the customer's time zone
    assert "Abonnée SARL" not in none.content.decode()
    assert "Abonnée SARL" in found.content.decode()


def test_a_subscription_page_shows_the_upcoming_invoice(console, subscription, tax_rate):
    page = console.get(reverse("admin:billing_subscription_change", args=[subscription.pk])).content.decode()

    assert "Upcoming invoice" in page
    assert "Amount due" in page
    assert "€104.40" in page  # 3 × 29.00 + 20 % VAT


def test_a_subscription_is_created_from_the_console_with_its_first_invoice(
    console, customer_factory, price_factory, tax_rate
):
    customer = customer_factory(legal_name="Nouvelle SARL")
    price = price_factory(lookup_key="pro-monthly", unit_amount=Decimal(4900))

    form = console.get(reverse("admin:billing_subscription_add"), {"customer": customer.pk})
    response = console.post(
        reverse("admin:billing_subscription_add"),
        {
            "customer": customer.pk,
            "collection_method": "charge_automatically",
            "items-TOTAL_FORMS": 1,
            "items-INITIAL_FORMS": 0,
            "items-0-price": price.pk,
            "items-0-quantity": 2,
        },
        follow=True,
    )

    assert form.status_code == 200 and 'name="items-0-price"' in form.content.decode()
    subscription = Subscription.objects.get(customer=customer)
    assert [(item.price.lookup_key, item.quantity) for item in subscription.items.all()] == [("pro-monthly", 2)]
    assert subscription.invoices.count() == 1
    assert f"Subscription #{subscription.pk} created for Nouvelle SARL." in response.content.decode()


def test_creating_a_subscription_with_an_archived_price_is_refused(console, customer, price_factory):
    archived = price_factory(lookup_key="old-monthly", active=False)
    response = console.post(
        reverse("admin:billing_subscription_add"),
        {
            "customer": customer.pk,
            "collection_method": "charge_automatically",
            "items-TOTAL_FORMS": 1,
            "items-INITIAL_FORMS": 0,
            "items-0-price": archived.pk,
            "items-0-quantity": 2,
        },
    )

    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()
    assert not Subscription.objects.exists()


def _act(console, action, subscriptions, **extra):
    return console.post(
        reverse("admin:billing_subscription_changelist"),
        {"action": action, "_selected_action": [subscription.pk for subscription in subscriptions], **extra},
        follow=True,
    )


@time_machine.travel(datetime(2026, 1, 10, tzinfo=UTC), tick=False)
def test_cancel_at_period_end_then_keep(console, subscription):
    canceling = _act(console, "cancel_at_period_end_action", [subscription])
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is True
    assert "1 subscription will cancel at the end of its period." in canceling.content.decode()

    _act(console, "undo_cancel", [subscription])

    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is False


@time_machine.travel(datetime(2026, 1, 10, tzinfo=UTC), tick=False)
def test_cancel_now_asks_for_a_reason_and_whether_to_prorate(console, subscription, tax_rate):
    asked = _act(console, "cancel_now", [subscription])
    done = _act(console, "cancel_now", [subscription], apply="1", reason="Closed the shop", prorate="on")

    assert 'name="prorate"' in asked.content.decode() and 'name="reason"' in asked.content.decode()
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert subscription.cancellation_reason == "Closed the shop"
    assert "1 subscription canceled." in done.content.decode()


@time_machine.travel(datetime(2026, 1, 10, tzinfo=UTC), tick=False)
def test_pause_and_resume_and_a_refusal_is_explained(console, subscription, tax_rate):
    _act(console, "pause", [subscription])
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.PAUSED

    paused_again = _act(console, "pause", [subscription])
    _act(console, "resume", [subscription])

    assert "cannot go from &#x27;paused&#x27; to &#x27;paused&#x27;" in paused_again.content.decode()
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE


SUBSCRIPTION_HEADERS = ["customer", "items", "collection_method", "days_until_due", "trial_days"]


def test_subscriptions_import_from_a_spreadsheet_through_the_subscription_service(
    console, customer_factory, price_factory, tax_rate
):
    first = customer_factory(email="a@client.example")
    second = customer_factory(email="b@client.example")
    price_factory(lookup_key="pro-monthly", unit_amount=Decimal(4900))
    price_factory(lookup_key="seats", unit_amount=Decimal(1000))
    dataset = tablib.Dataset(headers=SUBSCRIPTION_HEADERS)
    dataset.append(["a@client.example", "pro-monthly:1;seats:5", "charge_automatically", "", ""])
    dataset.append(["b@client.example", "pro-monthly:2", "send_invoice", "15", "14"])

    preview = console.post(
        "/admin/billing/subscription/import/",
        {"import_file": _upload(dataset, "subscriptions.csv"), "format": "0", "resource": "0"},
    )
    assert preview.status_code == 200
    assert "confirm_form" in preview.context, preview.content.decode()[-3000:]
    assert not Subscription.objects.exists()  # the preview changes nothing
    done = console.post("/admin/billing/subscription/process_import/", {**preview.context["confirm_form"].initial})

    assert done.status_code == 302
    a = Subscription.objects.get(customer=first)
    b = Subscription.objects.get(customer=second)
    assert sorted((item.price.lookup_key, item.quantity) for item in a.items.all()) == [
        ("pro-monthly", 1),
        ("seats", 5),
    ]
    assert (b.collection_method, b.days_until_due, b.status) == ("send_invoice", 15, Subscription.Status.TRIALING)
    assert a.invoices.count() == 1  # the first invoice, issued by subscription_create


def test_a_subscription_import_with_one_bad_row_imports_nothing(console, customer_factory, price_factory):
    customer_factory(email="a@client.example")
    price_factory(lookup_key="pro-monthly")
    dataset = tablib.Dataset(headers=SUBSCRIPTION_HEADERS)
    dataset.append(["a@client.example", "pro-monthly:1", "charge_automatically", "", ""])
    dataset.append(["ghost@client.example", "pro-monthly:x", "charge_automatically", "", ""])

    response = console.post(
        "/admin/billing/subscription/import/",
        {"import_file": _upload(dataset, "subscriptions.csv"), "format": "0", "resource": "0"},
    )

    page = response.content.decode()
    assert "No customer &#x27;ghost@client.example&#x27;." in page
    assert "the quantity after &#x27;:&#x27; must be a whole number" in page
    assert 'name="import_file_name"' not in page
    assert not Subscription.objects.exists()


def test_subscriptions_export_their_items_as_lookup_keys_and_quantities(console, subscription):
    # The columns ticked on the export form, and only those (config/console_export.py).
    response = console.post(
        "/admin/billing/subscription/export/",
        {
            "format": "0",
            "resource": "0",
            "subscriptionresource_customer": "on",
            "subscriptionresource_items": "on",
            "subscriptionresource_cycle": "on",
        },
    )

    header, row = response.content.decode().splitlines()[:2]
    columns = dict(zip(header.split(","), row.split(","), strict=True))
    assert (columns["customer"], columns["items"], columns["cycle"]) == (
        subscription.customer.email,
        "pro-monthly:3",
        "every month",
    )
    assert len(columns) == 3


# -- pending items and scheduled changes -----------------------------------------------------


def test_a_one_off_charge_is_added_for_the_next_invoice(console, customer):
    response = console.post(
        reverse("admin:billing_invoiceitem_add"),
        {
            "customer": customer.pk,
            "description": "Formation",
            "amount": "150.00",
            "quantity": "1",
            "discountable": "on",
        },
        follow=True,
    )

    item = InvoiceItem.objects.get()
    assert (item.amount, item.currency, item.invoice_id) == (15000, "EUR", None)
    assert "Formation (€150.00) added for" in response.content.decode()
    pending = console.get(reverse("admin:billing_invoiceitem_changelist"), {"invoiced": "no"}).content.decode()
    assert "Formation" in pending and "pending" in pending


def test_a_one_off_charge_needs_an_amount_or_a_price(console, customer):
    response = console.post(
        reverse("admin:billing_invoiceitem_add"), {"customer": customer.pk, "description": "?", "quantity": "1"}
    )

    assert "Give an amount or a one-time price, not both." in response.content.decode()
    assert not InvoiceItem.objects.exists()


def test_a_pending_scheduled_change_can_be_canceled(console, billing_world):
    change = ScheduledChange.objects.get()

    response = console.post(
        reverse("admin:billing_scheduledchange_changelist"),
        {"action": "cancel_scheduled", "_selected_action": [change.pk]},
        follow=True,
    )

    change.refresh_from_db()
    assert change.status == ScheduledChange.Status.CANCELED
    assert "1 scheduled change canceled." in response.content.decode()


def test_a_redeemed_coupon_keeps_its_terms(console, subscription):
    coupon = Coupon.objects.create(name="Bienvenue", percent_off=Decimal(10))
    Subscription.objects.filter(pk=subscription.pk).update(coupon=coupon)

    page = console.get(reverse("admin:billing_coupon_change", args=[coupon.pk])).content.decode()

    assert 'name="percent_off"' not in page and 'name="name"' in page


def test_read_only_staff_may_export_prices_but_not_import_them(client, staff_factory, price_factory):
    from django.contrib.auth.models import Group
    from django_otp.plugins.otp_totp.models import TOTPDevice

    viewer = staff_factory(username="regard")
    viewer.groups.add(Group.objects.get(name="Read-only"))
    device = TOTPDevice.objects.create(user=viewer, name="phone", confirmed=True)
    client.post("/admin/login/", {"username": "regard", "password": PASSWORD})
    client.post("/admin/otp/verify/", {"otp_token": current_totp(device)})
    price_factory()

    listing = client.get(reverse("admin:billing_price_changelist")).content.decode()

    assert "/admin/billing/price/export/" in listing
    assert "/admin/billing/price/import/" not in listing
    assert client.get("/admin/billing/price/import/").status_code == 403
    assert (
        reverse("admin:billing_billingrun_run")
        not in client.get(reverse("admin:billing_billingrun_changelist")).content.decode()
    )
    assert client.get(reverse("admin:billing_billingrun_run")).status_code == 403
