"""The change preview writes nothing, stays within a few queries, and tells what the change will do."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Coupon, InvoiceItem
from billing.services.changes import subscription_change, subscription_preview_change
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.upcoming import upcoming_invoice
from invoices.models import Invoice
from tests.billing.services.conftest import YEARLY, utc

pytestmark = pytest.mark.django_db

MODES = ["create_prorations", "always_invoice", "none"]


def row_counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for app in ("billing", "invoices")
        for model in apps.get_app_config(app).get_models()
    }


@pytest.fixture
def three_items(make_customer, make_price):
    """Plan + seats + add-on since 1 April 2024, with a 10 % forever coupon; the new prices are loaded bare."""
    customer = make_customer()
    plan, seat, addon, bigger = make_price(2900), make_price(1000), make_price(500), make_price(9900)
    coupon = Coupon.objects.create(name="Loyal", percent_off=Decimal(10), duration="forever")
    subscription = subscription_create(
        customer=customer,
        items=[ItemSpec(plan), ItemSpec(seat, 3), ItemSpec(addon)],
        at=utc(2024, 4, 1),
        coupon=coupon,
    )
    new_items = [ItemSpec(bigger), ItemSpec(seat, 5), ItemSpec(addon)]
    return subscription, new_items


@pytest.mark.parametrize("mode", MODES)
def test_the_preview_writes_nothing(mode, three_items):
    subscription, new_items = three_items
    before = row_counts()

    subscription_preview_change(subscription=subscription, items=new_items, at=utc(2024, 4, 16), proration=mode)

    assert row_counts() == before


@pytest.mark.parametrize("mode", MODES)
def test_the_preview_runs_a_bounded_number_of_queries(mode, three_items):
    subscription, new_items = three_items
    # As an API view would have them: a subscription and prices freshly loaded, nothing related cached.
    subscription = type(subscription).objects.get(pk=subscription.pk)
    new_items = [ItemSpec(type(item.price).objects.get(pk=item.price.pk), item.quantity) for item in new_items]

    with CaptureQueriesContext(connection) as queries:
        subscription_preview_change(subscription=subscription, items=new_items, at=utc(2024, 4, 16), proration=mode)

    # 10 before issue 16, + the period's billed lines (credits never exceed them), the
    # subscription's and the customer's discount rows with their coupons' products, and the tax
    # codes of the prices (one query for all), the customer's prepaid credit grants (issue 17: the
    # preview counts them): still constant in the number of items.
    assert len(queries) <= 16, [query["sql"][:90] for query in queries]


@pytest.mark.parametrize("mode", MODES)
def test_the_preview_shows_what_the_change_does(mode, three_items):
    subscription, new_items = three_items

    preview = subscription_preview_change(
        subscription=subscription, items=new_items, at=utc(2024, 4, 16), proration=mode
    )
    subscription_change(subscription=subscription, items=new_items, at=utc(2024, 4, 16), proration=mode)

    created = list(InvoiceItem.objects.filter(subscription=subscription, proration=True).order_by("pk"))
    assert [(line.description, line.amount) for line in preview.proration_lines] == [
        (item.description, item.amount) for item in created
    ]
    immediate = Invoice.objects.filter(subscription=subscription, billing_reason="subscription_update").first()
    assert (preview.immediate_invoice.total if preview.immediate_invoice else None) == (
        immediate.total if immediate else None
    )
    after = upcoming_invoice(subscription=subscription, at=utc(2024, 4, 16))
    assert preview.upcoming_invoice.total == after.total
    assert [line.draft.amount for line in preview.upcoming_invoice.lines] == [line.draft.amount for line in after.lines]


def test_the_preview_of_an_upgrade_with_a_coupon(three_items):
    subscription, new_items = three_items

    preview = subscription_preview_change(subscription=subscription, items=new_items, at=utc(2024, 4, 16))

    # Half of April left, on prices paid 10 % off: plan 2900 -> 2610 / 2 = 1305 credited, bigger plan
    # 9900 -> 8910 / 2 = 4455 charged; 3 seats 2700 / 2 = 1350 credited, 5 seats 4500 / 2 = 2250 charged.
    # Credits first, then charges: kept items (the seats) before new ones.
    assert [line.amount for line in preview.proration_lines] == [-1305, -1350, 2250, 4455]
    assert preview.proration_total == 4050
    assert (preview.mrr_before, preview.mrr_after) == (round(0.9 * 6400), round(0.9 * 15400))
    assert preview.immediate_invoice is None


def test_the_preview_of_a_cycle_change_invoices_at_once(make_customer, make_price):
    customer = make_customer()
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))], at=utc(2024, 4, 1))

    preview = subscription_preview_change(
        subscription=subscription, items=[ItemSpec(make_price(29000, cycle=YEARLY))], at=utc(2024, 4, 16)
    )

    assert preview.cycle_changed
    assert [line.draft.amount for line in preview.immediate_invoice.lines] == [29000, -1450]
    # The next invoice is the renewal a year later.
    assert [line.draft.period_start for line in preview.upcoming_invoice.lines] == [utc(2025, 4, 16)]
