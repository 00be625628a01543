"""Invariants of changes and renewals, over many generated cases."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.cycles import CycleSpec
from billing.models import Coupon, InvoiceItem, Subscription
from billing.selectors import period_after
from billing.services.changes import subscription_change
from billing.services.subscriptions import ItemSpec, subscription_create
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"]
FIXTURES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Rollback(Exception):
    pass


def in_rollback(test):
    """Run one example inside a transaction that is rolled back, so examples never see each other."""
    example = transaction.atomic()
    # It stands for a test case's own transaction: each service call in it is a transaction
    # of its own for the lock-order checker (config/locking.py), as in production.
    example._from_testcase = True
    try:
        with example:
            test()
            raise Rollback
    except Rollback:
        pass


@FIXTURES
@given(
    old_amount=st.integers(1, 10_000_000),
    new_amount=st.integers(1, 10_000_000),
    old_quantity=st.integers(1, 50),
    new_quantity=st.integers(1, 50),
    seconds_in=st.integers(0, 30 * 86_400),
    tz=st.sampled_from(ZONES),
    percent_off=st.one_of(st.none(), st.integers(1, 100)),
)
def test_a_change_and_its_reverse_at_the_same_instant_net_to_zero(
    make_customer, make_price, old_amount, new_amount, old_quantity, new_quantity, seconds_in, tz, percent_off
):
    def example():
        customer = make_customer(timezone=tz)
        old, new = make_price(old_amount), make_price(new_amount)
        coupon = None
        if percent_off:
            coupon = Coupon.objects.create(name="c", percent_off=Decimal(percent_off), duration="forever")
        start = utc(2024, 4, 1)
        subscription = subscription_create(
            customer=customer, items=[ItemSpec(old, old_quantity)], at=start, trial_days=0, coupon=coupon
        )
        at = start + timedelta(seconds=seconds_in)

        subscription_change(subscription=subscription, items=[ItemSpec(new, new_quantity)], at=at)
        subscription_change(subscription=subscription, items=[ItemSpec(old, old_quantity)], at=at)

        lines = list(InvoiceItem.objects.filter(subscription=subscription, proration=True).order_by("pk"))
        assert abs(sum(line.amount for line in lines)) <= len(lines)
        # Each line of the reverse change undoes one of the first change.
        first, reverse = lines[: len(lines) // 2], lines[len(lines) // 2 :]
        assert sorted(line.amount for line in first) == sorted(-line.amount for line in reverse)

    in_rollback(example)


CYCLES = [
    CycleSpec.monthly(),
    CycleSpec.quarterly(),
    CycleSpec.yearly(),
    CycleSpec.weekly(),
    CycleSpec.every(2, "week"),
    CycleSpec.day_of_month(31),
    CycleSpec.twice_monthly(1, 15),
    CycleSpec.last_business_day(holiday_country="FR"),
]


@FIXTURES
@given(
    start_seconds=st.integers(0, 4 * 365 * 86_400),
    anchor_days=st.one_of(st.none(), st.integers(1, 27)),
    tz=st.sampled_from(ZONES),
    cycle=st.sampled_from(CYCLES),
    trial_days=st.sampled_from([0, 0, 14]),
)
def test_a_years_periods_are_contiguous(make_customer, make_price, start_seconds, anchor_days, tz, cycle, trial_days):
    def example():
        start = utc(2023, 1, 1) + timedelta(seconds=start_seconds)
        anchor = start + timedelta(days=anchor_days) if anchor_days else None
        subscription = subscription_create(
            customer=make_customer(timezone=tz),
            items=[ItemSpec(make_price(2900, cycle=cycle.to_dict()))],
            at=start,
            trial_days=trial_days,
            billing_cycle_anchor=anchor,
        )
        periods = [(subscription.current_period_start, subscription.current_period_end)]
        while periods[-1][1] < start + timedelta(days=366):
            # What the billing run does at each boundary.
            period = period_after(subscription=subscription, tz=tz)
            Subscription.objects.filter(pk=subscription.pk).update(
                current_period_start=period.start, current_period_end=period.end
            )
            subscription.refresh_from_db()
            periods.append((period.start, period.end))

        assert periods[0][0] == start
        for (_, previous_end), (next_start, next_end) in zip(periods, periods[1:], strict=False):
            assert next_start == previous_end
            assert next_end > next_start

    in_rollback(example)
