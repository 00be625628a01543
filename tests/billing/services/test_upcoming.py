"""The upcoming invoice, and `renewal_draft` as the billing run uses it: pure, fed in bulk."""

from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine

from billing.models import Coupon, Subscription, SubscriptionItem
from billing.selectors import (
    pending_invoice_items_bulk,
    period_after,
    subscription_items_snapshots_bulk,
)
from billing.services.changes import subscription_change
from billing.services.coupons import (
    customer_discounts_prefetch,
    discounts_for_period,
    subscription_discounts_prefetch,
)
from billing.services.invoice_items import invoice_item_create
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.upcoming import renewal_draft, renewal_usage_windows, upcoming_invoice
from billing.services.usage import UsageEventInput, usage_events_record, usage_for_periods
from invoices.models import BalanceTransaction
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def metered_subscription(make_customer, make_price, make_metered_price):
    customer = make_customer()
    plan, calls = make_price(2900, nickname="Pro"), make_metered_price("0.5", nickname="API calls")
    coupon = Coupon.objects.create(name="Loyal", percent_off=Decimal(10), duration="forever")
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(plan), ItemSpec(calls)], at=utc(2024, 4, 1), coupon=coupon
    )
    with time_machine.travel(utc(2024, 4, 20), tick=False):
        usage_events_record(
            events=[
                UsageEventInput(
                    customer_id=customer.pk,
                    meter_key=calls.meter.key,
                    external_id=f"call-{n}",
                    value=Decimal(1000),
                    timestamp=utc(2024, 4, 2 + n),
                )
                for n in range(3)
            ]
        )
    return subscription


def test_the_upcoming_invoice_has_everything_the_renewal_will_bill(metered_subscription):
    customer = metered_subscription.customer
    invoice_item_create(customer=customer, amount=1500, description="Extra training", at=utc(2024, 4, 10))
    BalanceTransaction.objects.create(
        customer=customer, currency="EUR", amount=1000, kind="adjustment", created_at=utc(2024, 4, 10)
    )

    preview = upcoming_invoice(subscription=metered_subscription, at=utc(2024, 4, 20))

    assert [(line.draft.kind, line.draft.description, line.draft.amount) for line in preview.lines] == [
        ("subscription", "Pro", 2900),  # May, in advance
        ("usage", "API calls (usage)", 1500),  # April's 3000 calls at half a cent
        ("one_off", "Extra training", 1500),
    ]
    assert preview.lines[0].draft.period_start == utc(2024, 5, 1)
    assert preview.lines[1].draft.period_end == utc(2024, 5, 1)
    assert preview.totals.discount_total == 590
    assert preview.total == (5900 - 590) * 12 // 10
    assert preview.balance_applied == 1000
    assert preview.amount_due == preview.total - 1000


def test_usage_recorded_after_the_preview_instant_is_not_shown(metered_subscription):
    preview = upcoming_invoice(subscription=metered_subscription, at=utc(2024, 4, 3, 12))

    assert [line.draft.quantity for line in preview.lines if line.draft.kind == "usage"] == [Decimal(2000)]


def test_a_change_shows_in_the_upcoming_invoice_at_once(metered_subscription, make_price):
    plan = metered_subscription.items.get(price__usage_type="licensed").price
    metered = metered_subscription.items.get(price__usage_type="metered").price

    subscription_change(
        subscription=metered_subscription, items=[ItemSpec(plan, 2), ItemSpec(metered)], at=utc(2024, 4, 16)
    )

    kinds = [line.draft.kind for line in upcoming_invoice(subscription=metered_subscription, at=utc(2024, 4, 16)).lines]
    assert kinds == ["subscription", "usage", "proration", "proration"]


def test_renewal_drafts_are_built_without_queries_from_data_loaded_in_bulk(
    metered_subscription, make_customer, make_price, django_assert_num_queries
):
    other = subscription_create(customer=make_customer(), items=[ItemSpec(make_price(4900), 2)], at=utc(2024, 4, 15))
    subscriptions = list(
        Subscription.objects.filter(pk__in=[metered_subscription.pk, other.pk])
        .select_related("customer", "coupon")
        # As the billing run loads them (issue 16: the discount rows of subscriptions and customers).
        .prefetch_related("coupon__applies_to", subscription_discounts_prefetch(), customer_discounts_prefetch())
        .order_by("pk")
    )
    items = subscription_items_snapshots_bulk(subscription_ids=[s.pk for s in subscriptions])
    pending = pending_invoice_items_bulk(subscriptions=subscriptions)
    usage = usage_for_periods(
        wanted=[w for s in subscriptions for w in renewal_usage_windows(subscription=s, items=items[s.pk])]
    )

    with django_assert_num_queries(0):
        drafts = []
        for subscription in subscriptions:
            period = period_after(subscription=subscription, tz=subscription.customer.timezone)
            drafts.append(
                renewal_draft(
                    subscription=subscription,
                    items=items[subscription.pk],
                    period_start=period.start,
                    period_end=period.end,
                    usage=usage,
                    pending_items=pending[subscription.pk],
                    discounts=discounts_for_period(subscription=subscription),
                )
            )

    assert [[line.amount for line in draft.lines] for draft in drafts] == [[2900, 1500], [9800]]
    assert [len(draft.discounts) for draft in drafts] == [1, 0]
    assert drafts[1].period_start == utc(2024, 5, 15)


def test_renewal_draft_also_takes_subscription_items(metered_subscription, django_assert_num_queries):
    items = list(SubscriptionItem.objects.filter(subscription=metered_subscription).select_related("price__product"))
    subscription = Subscription.objects.select_related("customer").get(pk=metered_subscription.pk)

    with django_assert_num_queries(0):
        draft = renewal_draft(
            subscription=subscription,
            items=items,
            period_start=utc(2024, 5, 1),
            period_end=utc(2024, 6, 1),
            usage={},
            pending_items=(),
            discounts=(),
        )

    assert [line.amount for line in draft.lines] == [2900, 0]


def test_a_final_draft_bills_no_new_period(metered_subscription):
    draft = renewal_draft(
        subscription=Subscription.objects.select_related("customer").get(pk=metered_subscription.pk),
        items=subscription_items_snapshots_bulk(subscription_ids=[metered_subscription.pk])[metered_subscription.pk],
        period_start=utc(2024, 5, 1),
        period_end=utc(2024, 5, 1),
        usage={(metered_subscription.customer_id, 0, utc(2024, 4, 1), utc(2024, 5, 1)): Decimal(1)},
        pending_items=(),
        discounts=(),
        recurring=False,
    )

    assert [line.kind for line in draft.lines] == ["usage"]
    assert (draft.period_start, draft.period_end) == (utc(2024, 5, 1), utc(2024, 5, 1))
    assert (draft.lines[0].period_start, draft.lines[0].period_end) == (utc(2024, 4, 1), utc(2024, 5, 1))
