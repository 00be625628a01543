"""Issue 16: a credit for unused time never exceeds what was billed for that time, and is never a charge.

After any sequence of changes (every proration mode) and a final cancellation, with random
stacked coupons (percent or amount off; once, repeating or forever; removed on the way) and
either credit basis, each credit for an item's unused time is at most what the invoices (and
pending items) of the period billed for that item for [at, period end), after their discounts.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from billing.models import Coupon, InvoiceItem, Subscription, SubscriptionChange, SubscriptionDiscount
from billing.services.changes import subscription_change
from billing.services.coupons import DiscountSpec
from billing.services.subscriptions import (
    ItemSpec,
    subscription_cancel,
    subscription_coupon_remove,
    subscription_create,
)
from invoices.models import Invoice, InvoiceLine
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db

START = utc(2024, 4, 1)

coupons = st.tuples(
    st.sampled_from(["percent", "amount"]),
    st.integers(min_value=1, max_value=100),
    st.sampled_from(["once", "repeating", "forever"]),
)
operations = st.lists(
    st.tuples(
        st.sampled_from(["change", "remove_discount"]),
        st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=3, unique_by=lambda t: t[0]),
        st.sampled_from(["create_prorations", "always_invoice", "none"]),
    ),
    max_size=3,
)


def _billed(subscription: Subscription, at) -> dict[int, Fraction]:
    """What the period's issued invoices and pending items billed per price for [at, end)."""
    end = subscription.current_period_end
    billed: dict[int, Fraction] = defaultdict(Fraction)

    def add(price_id, amount, start, stop):
        if price_id is None or start is None or stop <= at or stop <= start:
            return
        billed[price_id] += (
            Fraction(amount)
            * Fraction((stop - max(at, start)).total_seconds())
            / Fraction((stop - start).total_seconds())
        )

    lines = InvoiceLine.objects.filter(
        invoice__subscription=subscription,
        invoice__status__in=[Invoice.Status.OPEN, Invoice.Status.PAID],
        period_end__gt=subscription.current_period_start,
        period_start__lt=end,
    )
    for line in lines:
        add(line.price_id, line.amount - line.discount_amount, line.period_start, line.period_end)
    for item in InvoiceItem.objects.filter(subscription=subscription, invoice__isnull=True):
        add(item.price_id, item.amount, item.period_start, item.period_end)
    return billed


def _coupon(kind: str, size: int, duration: str) -> Coupon:
    fields = {"percent_off": Decimal(size)} if kind == "percent" else {"amount_off": size * 50, "currency": "EUR"}
    if duration == "repeating":
        fields["duration_in_periods"] = 2
    return Coupon.objects.create(name=f"{kind}{size}", duration=duration, **fields)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking a database scenario takes minutes
)
@given(
    basis=st.sampled_from(["classic", "flexible"]),
    held=st.lists(coupons, max_size=3),
    ops=operations,
    days=st.lists(st.integers(1, 28), min_size=4, max_size=4, unique=True),
)
def test_credits_never_exceed_what_was_billed(make_customer, make_price, brand_factory, basis, held, ops, days):
    # each example creates its own customer and prices; the test transaction rolls them all back
    prices = [make_price(3000), make_price(1700), make_price(999)]
    # A brand of its own: each example's invoices start a number series (dated from 1 April).
    customer = make_customer(brand=brand_factory())
    subscription = subscription_create(
        customer=customer,
        items=[ItemSpec(prices[0])],
        at=START,
        trial_days=0,
        discounts=[DiscountSpec(coupon=_coupon(*spec)) for spec in held],
        proration_credit_basis=basis,
    )
    note(f"basis={basis} held={held} ops={ops} days={sorted(days)}")
    instants = [START + timedelta(days=day, hours=5) for day in sorted(days)]
    for (kind, items, mode), at in zip(ops, instants, strict=False):
        subscription.refresh_from_db()
        if kind == "remove_discount":
            running = SubscriptionDiscount.objects.filter(subscription=subscription, end__isnull=True).first()
            if running is not None:
                subscription_coupon_remove(subscription=subscription, discount=running, at=at)
            continue
        billed = _billed(subscription, at)
        last = InvoiceItem.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        subscription_change(
            subscription=subscription,
            items=[ItemSpec(prices[index], quantity=quantity) for index, quantity in items],
            at=at,
            proration=mode,
        )
        for item in InvoiceItem.objects.filter(pk__gt=last, proration=True, amount__lt=0):
            # then: never more than what was billed for that price for [at, end) (rounded once)
            assert -item.amount <= billed[item.price_id] + Fraction(1, 2), (item.description, billed)
    # finally a cancellation with a credit
    subscription.refresh_from_db()
    at = instants[-1]
    billed = _billed(subscription, at)
    subscription_cancel(subscription=subscription, at=at, at_period_end=False, prorate=True)
    # The cancellation's own credit (the balance also takes the final invoice of pending items).
    credit = -SubscriptionChange.objects.filter(subscription=subscription, kind="cancel").get().proration_amount
    assert credit >= 0  # a credit, never a charge
    assert credit <= sum(max(amount, Fraction(0)) for amount in billed.values()) + Fraction(len(billed), 2)


def test_the_property_catches_a_credit_at_the_list_price(make_customer, make_price):
    """Negative control: the undiscounted credit the bug gave is more than what was billed."""
    price = make_price(3000)
    coupon = Coupon.objects.create(name="-1000", amount_off=1000, currency="EUR", duration="forever")
    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(price)], at=START, trial_days=0, coupon=coupon
    )
    billed = _billed(subscription, utc(2024, 4, 16))
    undiscounted_credit = 1500  # 3000 x 15/30, what cancelling credited before the fix
    assert billed[price.pk] == 1000
    assert not undiscounted_credit <= billed[price.pk] + Fraction(1, 2)
