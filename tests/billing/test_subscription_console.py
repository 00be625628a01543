"""The subscription editor in the console (issue 15, item 4): create with the price picker and the
live preview, change items with the change preview, lifecycle operations, roles and modes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.models import Coupon, InvoiceItem, Price, Subscription
from billing.services.changes import subscription_preview_change
from billing.services.coupons import subscription_discounts_active
from billing.services.subscriptions import (
    ItemSpec,
    subscription_create,
    subscription_discount_add,
    subscription_preview_create,
)
from config.console import format_money
from invoices.models import Invoice
from tests.conftest import current_totp

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
ADD = "admin:billing_subscription_add"


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def world(customer_factory, price_factory, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    customer = customer_factory(legal_name="Boulangerie Martin SARL")
    pro = price_factory(product__name="Nuage Pro", unit_amount=Decimal(4900))
    return customer, pro


def item_rows(*rows: tuple[object, object], total: int = 3) -> dict[str, object]:
    data: dict[str, object] = {"items-TOTAL_FORMS": total, "items-INITIAL_FORMS": 0}
    for index in range(total):
        price, quantity = rows[index] if index < len(rows) else ("", "")
        data[f"items-{index}-price"] = getattr(price, "pk", price)
        data[f"items-{index}-quantity"] = quantity
    return data


def create_body(customer, *rows, **extra) -> dict[str, object]:
    return {"customer": customer.pk, "collection_method": "charge_automatically", **item_rows(*rows), **extra}


def signed_in(client, staff_factory, role: str):
    user = staff_factory(username=f"{role.lower()}-user")
    user.groups.add(Group.objects.get(name=role))
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
    assert client.post("/admin/otp/verify/", {"otp_token": current_totp(device)}).status_code == 302
    return client


# -- create ------------------------------------------------------------------------------------


def test_the_price_picker_lists_the_customers_currency_and_mode_with_amount_and_cycle(console, world, price_factory):
    customer, _pro = world
    price_factory(
        product__name="Nuage Annual", unit_amount=Decimal(49000), cycle={"kind": "interval", "unit": "year", "count": 1}
    )
    price_factory(product__name="Dollar Plan", currency="USD")
    price_factory(product__name="Sandbox Plan", livemode=False)
    price_factory(product__name="Old Plan", active=False)
    price_factory(
        product__name="Tiered Plan",
        scheme=Price.Scheme.TIERED_GRADUATED,
        unit_amount=None,
        tiers=[{"up_to": 10, "unit_amount": "1000"}, {"up_to": None, "unit_amount": "800"}],
    )

    page = console.get(reverse(ADD), {"customer": customer.pk}).content.decode()

    assert "Nuage Pro — €49.00 / month" in page
    assert "Nuage Annual — €490.00 / year" in page
    assert "Tiered Plan — from €10.00 / month" in page
    assert "Dollar Plan" not in page and "Sandbox Plan" not in page and "Old Plan" not in page
    assert 'data-tarif-preview-url="/admin/billing/subscription/add/preview/"' in page


def test_a_subscription_is_created_with_several_items_coupon_and_terms(console, world, price_factory):
    customer, pro = world
    seats = price_factory(product__name="Seats", unit_amount=Decimal(1000))
    coupon = Coupon.objects.create(name="Launch", percent_off=Decimal(10), duration="forever")

    response = console.post(
        reverse(ADD),
        create_body(
            customer,
            (pro, 1),
            (seats, 3),
            coupon=coupon.pk,
            collection_method="send_invoice",
            days_until_due=15,
        ),
        follow=True,
    )

    subscription = Subscription.objects.get(customer=customer)
    assert sorted((item.price.product.name, item.quantity) for item in subscription.items.all()) == [
        ("Nuage Pro", 1),
        ("Seats", 3),
    ]
    assert subscription.coupon == coupon and subscription.days_until_due == 15
    invoice = subscription.invoices.get()
    assert invoice.discount_total == 790  # 10 % of 49 + 3 × 10
    assert f"Subscription #{subscription.pk} created for Boulangerie Martin SARL." in response.content.decode()


def test_the_create_preview_shows_the_services_numbers_and_writes_nothing(console, world):
    customer, pro = world
    InvoiceItem.objects.create(customer=customer, description="Setup", amount=2500, currency="EUR", quantity=1)
    expected = subscription_preview_create(customer=customer, items=[ItemSpec(pro, 2)], trial_days=None)

    response = console.post(reverse("admin:billing_subscription_create_preview"), create_body(customer, (pro, 2)))

    html = response.content.decode()
    assert response.status_code == 200
    assert format_money(expected.first_invoice.amount_due, "EUR") in html
    assert format_money(expected.first_invoice.totals.tax_total, "EUR") in html
    assert "Setup" in html and "€98.00" in html and "€147.60" in html  # (98 + 25) + 20 % VAT
    assert not Subscription.objects.exists() and not Invoice.objects.exists()


@pytest.mark.parametrize(
    ("quantity", "error"),
    [(0, "Ensure this value is greater than or equal to 1."), (-3, "Ensure this value is greater than or equal to 1.")],
)
def test_a_zero_or_negative_quantity_is_refused(console, world, quantity, error):
    customer, pro = world

    response = console.post(reverse(ADD), create_body(customer, (pro, quantity)))
    preview = console.post(reverse("admin:billing_subscription_create_preview"), create_body(customer, (pro, quantity)))

    assert response.status_code == 200 and error in response.content.decode()
    assert error in preview.content.decode()
    assert not Subscription.objects.exists()


def test_a_price_of_another_currency_or_mode_is_refused(console, world, price_factory):
    customer, _pro = world
    dollars = price_factory(product__name="Dollar Plan", currency="USD")
    sandbox = price_factory(product__name="Sandbox Plan", livemode=False)

    for price in (dollars, sandbox):
        response = console.post(reverse(ADD), create_body(customer, (price, 1)))
        assert response.status_code == 200
        assert "Select a valid choice." in response.content.decode()
    assert not Subscription.objects.exists()


def test_no_price_at_all_is_refused(console, world):
    customer, _pro = world

    response = console.post(reverse(ADD), create_body(customer))

    assert "Choose at least one price." in response.content.decode()
    assert not Subscription.objects.exists()


def test_a_service_refusal_is_shown_on_the_form(console, world):
    customer, pro = world

    response = console.post(reverse(ADD), create_body(customer, (pro, 1), promotion_code="NOPE"))

    assert "The code NOPE does not exist." in response.content.decode()
    assert not Subscription.objects.exists()


# -- change items ----------------------------------------------------------------------------


@pytest.fixture
def running(world):
    customer, pro = world
    return subscription_create(customer=customer, items=[ItemSpec(pro, 2)], at=NOW - timedelta(days=9))


def change_body(price, quantity, proration="create_prorations"):
    return {"proration": proration, **item_rows((price, quantity), total=2)}


@pytest.mark.parametrize("proration", ["create_prorations", "always_invoice", "none"])
def test_the_change_preview_shows_the_services_numbers(console, running, proration):
    pro = running.items.get().price
    expected = subscription_preview_change(subscription=running, items=[ItemSpec(pro, 5)], proration=proration)

    response = console.post(
        reverse("admin:billing_subscription_change_items_preview", args=[running.pk]), change_body(pro, 5, proration)
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert f"{format_money(expected.mrr_before, 'EUR')} → {format_money(expected.mrr_after, 'EUR')}" in html
    for line in expected.proration_lines:
        assert format_money(line.amount, "EUR") in html
    if expected.immediate_invoice is not None:
        assert format_money(expected.immediate_invoice.amount_due, "EUR") in html
    assert format_money(expected.upcoming_invoice.amount_due, "EUR") in html
    running.refresh_from_db()
    assert running.items.get().quantity == 2


def test_changing_the_quantity_applies_it_with_the_chosen_proration(console, running):
    pro = running.items.get().price

    response = console.post(
        reverse("admin:billing_subscription_change_items", args=[running.pk]),
        change_body(pro, 5, "always_invoice"),
        follow=True,
    )

    assert running.items.get().quantity == 5
    assert running.invoices.count() == 2  # the first one, and the prorations invoiced now
    assert "MRR €98.00 → €245.00" in response.content.decode()


def test_a_change_to_zero_or_to_another_currency_is_refused(console, running, price_factory):
    pro = running.items.get().price
    dollars = price_factory(product__name="Dollar Plan", currency="USD")

    zero = console.post(reverse("admin:billing_subscription_change_items", args=[running.pk]), change_body(pro, 0))
    other = console.post(reverse("admin:billing_subscription_change_items", args=[running.pk]), change_body(dollars, 1))

    assert "Ensure this value is greater than or equal to 1." in zero.content.decode()
    assert "Select a valid choice." in other.content.decode()
    assert running.items.get().quantity == 2


# -- lifecycle operations ---------------------------------------------------------------------


def operate(console, subscription, operation, **data):
    return console.post(
        reverse("admin:billing_subscription_operation", args=[subscription.pk, operation]), data, follow=True
    )


def test_the_change_page_has_the_summary_items_and_the_operations(console, running):
    page = console.get(reverse("admin:billing_subscription_change", args=[running.pk])).content.decode()

    assert "data-tarif-summary" in page and "Boulangerie Martin SARL" in page
    assert "(Europe/Paris)" in page and "€98.00" in page  # MRR, period in the customer's zone
    assert "Nuage Pro — €49.00 / month" in page
    for slug in ("items/", "do/coupon/", "do/pause/", "do/cancel/"):
        assert f"/admin/billing/subscription/{running.pk}/{slug}" in page
    assert "do/undo-cancel/" not in page and "do/resume/" not in page


def test_each_operation_page_states_its_consequence(console, running):
    page = console.get(reverse("admin:billing_subscription_operation", args=[running.pk, "cancel"]))

    assert page.status_code == 200
    assert "ends at once, pending items and usage so far are invoiced" in page.content.decode()
    assert 'data-confirm="' in page.content.decode()


def test_cancel_at_period_end_then_undo_then_undo_again_is_refused(console, running):
    operate(console, running, "cancel", when="period_end", reason="Too expensive")
    running.refresh_from_db()
    assert running.cancel_at_period_end and running.cancellation_reason == "Too expensive"

    operate(console, running, "undo-cancel")
    running.refresh_from_db()
    assert not running.cancel_at_period_end
    again = operate(console, running, "undo-cancel")

    assert "This subscription is not set to cancel at period end." in again.content.decode()


def test_cancel_now_with_a_credit_and_prorating_at_period_end_is_refused(console, running):
    refused = operate(console, running, "cancel", when="period_end", prorate="on")
    running.refresh_from_db()
    assert running.status == Subscription.Status.ACTIVE
    assert "Nothing is prorated when a subscription ends with its period." in refused.content.decode()

    operate(console, running, "cancel", when="now", prorate="on", reason="Closed")

    running.refresh_from_db()
    assert running.status == Subscription.Status.CANCELED and running.ended_at == NOW


def test_pause_with_a_resume_date_then_resume_now(console, running):
    operate(console, running, "pause", resumes_on="2026-04-01")
    running.refresh_from_db()
    assert running.status == Subscription.Status.PAUSED
    assert running.resumes_at == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # midnight in Paris (summer time)

    operate(console, running, "resume")

    running.refresh_from_db()
    assert running.status == Subscription.Status.ACTIVE and running.current_period_start == NOW


def test_extend_a_trial_and_a_date_in_the_past_is_refused(console, world):
    customer, pro = world
    trialing = subscription_create(customer=customer, items=[ItemSpec(pro)], at=NOW, trial_days=14)

    past = operate(console, trialing, "extend-trial", trial_end="2026-03-01")
    operate(console, trialing, "extend-trial", trial_end="2026-04-15")

    assert "The new trial end must come after the current one" in past.content.decode()
    trialing.refresh_from_db()
    assert trialing.trial_end == datetime(2026, 4, 14, 22, 0, tzinfo=UTC)


def test_add_then_remove_a_coupon(console, running):
    coupon = Coupon.objects.create(name="Loyal", percent_off=Decimal(10), duration="forever")
    dollars = Coupon.objects.create(name="Dollars", amount_off=500, currency="USD", duration="once")

    refused = operate(console, running, "coupon", coupon=dollars.pk)
    operate(console, running, "coupon", coupon=coupon.pk)
    running.refresh_from_db()
    assert running.coupon == coupon
    assert "is in USD; this subscription is in EUR" in refused.content.decode()

    operate(console, running, "remove-coupon")
    running.refresh_from_db()
    assert running.coupon is None


def test_remove_one_of_two_stacked_discounts_keeps_the_other(console, running):
    loyal = Coupon.objects.create(name="Loyal", percent_off=Decimal(10), duration="forever")
    launch = Coupon.objects.create(name="Launch", amount_off=500, currency="EUR", duration="forever")
    subscription_discount_add(subscription=running, coupon=loyal)
    second = subscription_discount_add(subscription=running, coupon=launch)

    page = console.get(reverse("admin:billing_subscription_operation", args=[running.pk, "remove-coupon"]))
    operate(console, running, "remove-coupon", discount=second.pk)

    assert "All of this subscription&#x27;s discounts" in page.content.decode()
    running.refresh_from_db()
    assert [d.coupon for d in subscription_discounts_active(subscription=running)] == [loyal]

    operate(console, running, "remove-coupon", discount="")
    assert subscription_discounts_active(subscription=running) == []


# -- roles and modes ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["Support", "Read-only"])
def test_support_and_read_only_see_subscriptions_but_cannot_act(client, staff_factory, running, role):
    viewer = signed_in(client, staff_factory, role)
    customer = running.customer
    pro = running.items.get().price

    page = viewer.get(reverse("admin:billing_subscription_change", args=[running.pk]))
    listing = viewer.get(reverse("admin:billing_subscription_changelist"))
    add = viewer.get(reverse(ADD))
    items = viewer.post(reverse("admin:billing_subscription_change_items", args=[running.pk]), change_body(pro, 9))
    cancel = viewer.post(reverse("admin:billing_subscription_operation", args=[running.pk, "cancel"]), {"when": "now"})
    preview = viewer.post(reverse("admin:billing_subscription_create_preview"), create_body(customer, (pro, 1)))

    assert page.status_code == 200 and listing.status_code == 200
    assert "data-tarif-operations" not in page.content.decode()
    assert (add.status_code, items.status_code, cancel.status_code, preview.status_code) == (403, 403, 403, 403)
    running.refresh_from_db()
    assert running.status == Subscription.Status.ACTIVE and running.items.get().quantity == 2


def test_finance_acts(client, staff_factory, running):
    finance = signed_in(client, staff_factory, "Finance")

    response = finance.post(
        reverse("admin:billing_subscription_operation", args=[running.pk, "cancel"]), {"when": "period_end"}
    )

    assert response.status_code == 302
    running.refresh_from_db()
    assert running.cancel_at_period_end


def test_a_test_mode_subscription_is_not_found_in_the_live_console(console, customer_factory, price_factory, world):
    sandbox = customer_factory(legal_name="Sandbox SARL", livemode=False)
    price = price_factory(product__name="Sandbox Plan", livemode=False)
    subscription = subscription_create(customer=sandbox, items=[ItemSpec(price)], at=NOW)

    items = console.get(reverse("admin:billing_subscription_change_items", args=[subscription.pk]))
    cancel = console.post(
        reverse("admin:billing_subscription_operation", args=[subscription.pk, "cancel"]), {"when": "now"}
    )

    assert items.status_code == 404 and cancel.status_code == 404
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE


# -- the list -----------------------------------------------------------------------------------


def test_the_list_shows_plan_status_mrr_period_end_and_collection_and_filters(console, running, world, price_factory):
    other = price_factory(product__name="Other Product")

    page = console.get(reverse("admin:billing_subscription_changelist")).content.decode()
    by_product = console.get(
        reverse("admin:billing_subscription_changelist"), {"product": other.product_id}
    ).content.decode()
    by_period = console.get(
        reverse("admin:billing_subscription_changelist"),
        {"current_period_end_from": "2026-03-01", "current_period_end_to": "2026-04-30"},
    ).content.decode()

    assert "Nuage Pro × 2" in page and "€98.00" in page and "automatic" in page
    assert "1 Apr 2026" in page  # the period end, in the customer's zone (English: day first)
    assert "Boulangerie Martin SARL" not in by_product
    assert "Boulangerie Martin SARL" in by_period


def test_cancel_at_a_date_then_a_date_in_the_past_is_refused(console, running):
    past = operate(console, running, "cancel", when="date", cancel_on="2026-03-01")
    missing = operate(console, running, "cancel", when="date")
    running.refresh_from_db()
    assert running.cancel_at is None
    assert "A cancellation date must be in the future" in past.content.decode()
    assert "Choose the cancellation date." in missing.content.decode()

    done = operate(console, running, "cancel", when="date", cancel_on="2026-03-20", reason="Moving")

    running.refresh_from_db()
    assert running.cancel_at == datetime(2026, 3, 19, 23, 0, tzinfo=UTC)  # midnight in Paris
    assert running.status == Subscription.Status.ACTIVE
    assert "/do/undo-cancel/" in done.content.decode()


# -- issue 16, cycles: a billing day of the month, and the first period ----------------------------


def test_a_subscription_is_created_on_a_day_of_the_month_with_a_free_first_period(console, world):
    customer, pro = world

    console.post(reverse(ADD), create_body(customer, (pro, 1), billing_day=31, first_period="none"), follow=True)

    subscription = Subscription.objects.get(customer=customer)
    # 31 March, local midnight in Paris (UTC+2 from 29 March).
    assert subscription.current_period_end == datetime(2026, 3, 30, 22, tzinfo=UTC)
    assert subscription.billing_cycle_anchor_config["day_of_month"] == 31
    assert subscription.invoices.get().total == 0


def test_a_billing_month_on_a_monthly_price_is_refused_on_the_form(console, world):
    customer, pro = world

    response = console.post(reverse(ADD), create_body(customer, (pro, 1), billing_day=1, billing_month=3))

    assert response.status_code == 200
    assert "A billing month only applies to yearly cycles" in response.content.decode()
    assert not Subscription.objects.exists()
