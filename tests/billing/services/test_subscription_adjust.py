"""Extend a trial, add or remove a coupon on a running subscription, undo a scheduled cancellation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from billing.errors import SubscriptionError
from billing.models import Coupon, PromotionCode
from billing.services.coupons import CouponError
from billing.services.modes import ModeMismatch
from billing.services.subscriptions import (
    ItemSpec,
    subscription_cancel,
    subscription_cancel_undo,
    subscription_coupon_apply,
    subscription_coupon_remove,
    subscription_create,
    subscription_extend_trial,
)
from billing.services.upcoming import upcoming_invoice
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db


def refused(error, operation, match=None, **arguments):
    """A refusal rolls back its own savepoint (the services run in their caller's transaction)."""
    with pytest.raises(error, match=match), transaction.atomic():
        operation(**arguments)


@pytest.fixture
def trialing(make_customer, make_price):
    return subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(4900))], at=utc(2024, 4, 1), trial_days=14
    )


@pytest.fixture
def active(make_customer, make_price):
    return subscription_create(customer=make_customer(), items=[ItemSpec(make_price(4900), 2)], at=utc(2024, 4, 1))


def test_extending_a_trial_moves_its_end_and_the_first_paid_period(trialing):
    subscription_extend_trial(subscription=trialing, trial_end=utc(2024, 4, 29), at=utc(2024, 4, 5))

    trialing.refresh_from_db()
    assert trialing.trial_end == trialing.current_period_end == utc(2024, 4, 29)
    assert trialing.billing_cycle_anchor == utc(2024, 4, 29)
    first_paid = upcoming_invoice(subscription=trialing, at=utc(2024, 4, 5))
    assert first_paid.lines[0].draft.period_start == utc(2024, 4, 29)
    assert first_paid.lines[0].draft.period_end == utc(2024, 5, 29)


def test_a_trial_is_extended_only_later_and_only_while_trialing(trialing, active):
    refused(
        SubscriptionError,
        subscription_extend_trial,
        match="after the current one",
        subscription=trialing,
        trial_end=utc(2024, 4, 10),
        at=utc(2024, 4, 5),
    )
    refused(
        SubscriptionError,
        subscription_extend_trial,
        match="0 to 730 days",
        subscription=trialing,
        trial_end=utc(2027, 4, 10),
        at=utc(2024, 4, 5),
    )
    refused(
        SubscriptionError,
        subscription_extend_trial,
        match="not in a trial",
        subscription=active,
        trial_end=utc(2024, 6, 1),
        at=utc(2024, 4, 5),
    )


def test_a_coupon_added_to_a_running_subscription_discounts_its_next_invoice(active):
    coupon = Coupon.objects.create(name="Loyal", percent_off=Decimal(10), duration="forever")

    subscription_coupon_apply(subscription=active, coupon=coupon, at=utc(2024, 4, 10))

    active.refresh_from_db()
    coupon.refresh_from_db()
    assert active.coupon == coupon and coupon.times_redeemed == 1
    assert upcoming_invoice(subscription=active, at=utc(2024, 4, 10)).totals.discount_total == 980
    change = active.changes.order_by("-pk").first()
    assert (change.mrr_before, change.mrr_after) == (9800, 8820)


def test_a_promotion_code_gives_its_coupon_and_refusals_are_the_redemption_rules(active, make_price):
    spring = Coupon.objects.create(name="Spring", amount_off=500, currency="EUR", duration="once")
    PromotionCode.objects.create(coupon=spring, code="SPRING")
    dollars = Coupon.objects.create(name="Dollars", amount_off=500, currency="USD", duration="once")
    test_mode = Coupon.objects.create(name="Sandbox", percent_off=Decimal(5), duration="once", livemode=False)

    refused(CouponError, subscription_coupon_apply, subscription=active, coupon=dollars)
    refused(ModeMismatch, subscription_coupon_apply, subscription=active, coupon=test_mode)
    refused(SubscriptionError, subscription_coupon_apply, match="Choose a coupon", subscription=active)
    subscription_coupon_apply(subscription=active, promotion_code="spring", at=utc(2024, 4, 10))

    active.refresh_from_db()
    assert active.coupon == spring and active.promotion_code.code == "SPRING"


def test_removing_the_coupon_ends_the_discount_and_removing_none_is_refused(active):
    coupon = Coupon.objects.create(name="Loyal", percent_off=Decimal(10), duration="forever")
    subscription_coupon_apply(subscription=active, coupon=coupon, at=utc(2024, 4, 10))

    subscription_coupon_remove(subscription=active, at=utc(2024, 4, 11))

    active.refresh_from_db()
    assert active.coupon is None
    assert upcoming_invoice(subscription=active, at=utc(2024, 4, 11)).totals.discount_total == 0
    refused(SubscriptionError, subscription_coupon_remove, match="no coupon", subscription=active)


def test_undo_a_scheduled_cancellation_and_undo_when_nothing_is_scheduled(active):
    refused(SubscriptionError, subscription_cancel_undo, match="not set to cancel", subscription=active)

    subscription_cancel(subscription=active, at=utc(2024, 4, 10), at_period_end=True)
    subscription_cancel_undo(subscription=active)

    active.refresh_from_db()
    assert active.cancel_at_period_end is False and active.canceled_at is None
