# ruff: noqa: F811  (the fixtures of tests/billing/services/conftest.py are imported by name below)
"""Hand-worked cases for issue 16's discounts part (items 1, 3 and 6), run against the services.

Every case starts a subscription on 1 April 2024 00:00 UTC (April: 30 days) and acts on
16 April 00:00 (15 days left: exactly half), unless it says otherwise. Amounts are cents;
tax (French VAT 20 %) is left out of the credits, which are pre-tax lines and balance credits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings

from billing.models import Coupon, CustomerDiscount, InvoiceItem, SubscriptionDiscount
from billing.services.billing_run import billing_run_start
from billing.services.changes import subscription_change
from billing.services.coupons import DiscountSpec, customer_discount_apply
from billing.services.subscriptions import (
    ItemSpec,
    subscription_cancel,
    subscription_coupon_remove,
    subscription_create,
)
from invoices.models import Invoice
from invoices.selectors import customer_balance
from tests.billing.services.conftest import billing_brand, make_customer, make_price, utc  # noqa: F401

pytestmark = pytest.mark.django_db

START, HALF = utc(2024, 4, 1), utc(2024, 4, 16)


def amount_off(amount: int, duration: str = "forever", **fields) -> Coupon:
    return Coupon.objects.create(name=f"-{amount}", amount_off=amount, currency="EUR", duration=duration, **fields)


def percent_off(percent: int, duration: str = "forever", **fields) -> Coupon:
    return Coupon.objects.create(name=f"-{percent}%", percent_off=Decimal(percent), duration=duration, **fields)


def proration_amounts(subscription) -> list[int]:
    return list(
        InvoiceItem.objects.filter(subscription=subscription, proration=True)
        .order_by("pk")
        .values_list("amount", flat=True)
    )


def renewal_subtotals_after_discount(subscription) -> list[int]:
    return [
        invoice.subtotal - invoice.discount_total
        for invoice in Invoice.objects.filter(subscription=subscription).order_by("pk")
    ]


# -- the cases ---------------------------------------------------------------------------


def amount_off_cancel(make_customer, make_price):
    # 3000/month, 1000 off forever: April billed 2000. Cancel half way, credit:
    # (3000 - 1000) x 15/30 = 1000 (the bug credited 3000 x 15/30 = 1500).
    customer = make_customer()
    sub = subscription_create(
        customer=customer, items=[ItemSpec(make_price(3000))], at=START, trial_days=0, coupon=amount_off(1000)
    )
    subscription_cancel(subscription=sub, at=HALF, at_period_end=False, prorate=True)
    return customer_balance(customer_id=customer.pk, currency="EUR")


def amount_off_downgrade(make_customer, make_price):
    # Pro 3000 -> Basic 1500 half way, 1000 off forever (the discount applies to the period):
    # credit -(3000 - 1000) x 1/2 = -1000; charge (1500 - 1000) x 1/2 = +250.
    sub = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(3000))], at=START, trial_days=0, coupon=amount_off(1000)
    )
    subscription_change(subscription=sub, items=[ItemSpec(make_price(1500))], at=HALF)
    return proration_amounts(sub)


def percent_off_downgrade(make_customer, make_price):
    # Pro 3000 -> Basic 1500 half way, 20 % off forever:
    # credit -(3000 x 0.8) / 2 = -1200; charge (1500 x 0.8) / 2 = +600.
    sub = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(3000))], at=START, trial_days=0, coupon=percent_off(20)
    )
    subscription_change(subscription=sub, items=[ItemSpec(make_price(1500))], at=HALF)
    return proration_amounts(sub)


def removed_forever_coupon_then_downgrade(make_customer, make_price):
    # 20 % off forever, removed on 5 April (April stays billed 2400), Pro -> Basic half way:
    # credit -2400 / 2 = -1200 (not -3000 / 2); charge 1500 / 2 = +750 (no discount any more).
    sub = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(3000))], at=START, trial_days=0, coupon=percent_off(20)
    )
    subscription_coupon_remove(subscription=sub, at=utc(2024, 4, 5))
    subscription_change(subscription=sub, items=[ItemSpec(make_price(1500))], at=HALF)
    return proration_amounts(sub)


def _seats_reduced_without_proration(make_customer, make_price, basis: str):
    # 3 seats x 1000 billed for April (3000); on 6 April down to 1 seat with no proration;
    # on 16 April cancelled with a credit.
    customer = make_customer()
    seat = make_price(1000)
    sub = subscription_create(
        customer=customer,
        items=[ItemSpec(seat, quantity=3)],
        at=START,
        trial_days=0,
        proration_credit_basis=basis,
    )
    subscription_change(subscription=sub, items=[ItemSpec(seat, quantity=1)], at=utc(2024, 4, 6), proration="none")
    subscription_cancel(subscription=sub, at=HALF, at_period_end=False, prorate=True)
    return customer_balance(customer_id=customer.pk, currency="EUR")


def classic_after_quantity_change(make_customer, make_price):
    # classic: the current quantity at the current price: 1 x 1000 x 1/2 = 500.
    return _seats_reduced_without_proration(make_customer, make_price, "classic")


def flexible_after_quantity_change(make_customer, make_price):
    # flexible: what April was billed for the seats: 3000 x 1/2 = 1500 (Stripe, "flexible" billing mode).
    return _seats_reduced_without_proration(make_customer, make_price, "flexible")


def flexible_after_price_change_without_proration(make_customer, make_price):
    # Pro 3000 billed for April; 6 April -> Max 6000 with no proration (Max never billed);
    # 16 April cancelled. flexible: Max billed 0 -> no credit; Pro billed 3000 x 1/2 = 1500.
    customer = make_customer()
    sub = subscription_create(
        customer=customer,
        items=[ItemSpec(make_price(3000, nickname="Pro"))],
        at=START,
        trial_days=0,
        proration_credit_basis="flexible",
    )
    subscription_change(
        subscription=sub, items=[ItemSpec(make_price(6000, nickname="Max"))], at=utc(2024, 4, 6), proration="none"
    )
    subscription_cancel(subscription=sub, at=HALF, at_period_end=False, prorate=True)
    return customer_balance(customer_id=customer.pk, currency="EUR")


def classic_after_price_change_without_proration(make_customer, make_price):
    # Same, classic: Max at the current price 6000 x 1/2 = 3000, capped at what was billed for
    # Max for that time (0): 0. A classic credit never exceeds what was billed for the item.
    customer = make_customer()
    sub = subscription_create(
        customer=customer, items=[ItemSpec(make_price(3000))], at=START, trial_days=0, proration_credit_basis="classic"
    )
    subscription_change(subscription=sub, items=[ItemSpec(make_price(6000))], at=utc(2024, 4, 6), proration="none")
    subscription_cancel(subscription=sub, at=HALF, at_period_end=False, prorate=True)
    return customer_balance(customer_id=customer.pk, currency="EUR")


def _stacked(make_customer, make_price):
    return subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(10000))],
        at=START,
        trial_days=0,
        discounts=[DiscountSpec(coupon=percent_off(10)), DiscountSpec(coupon=amount_off(2000))],
    )


def stacking_sequential(make_customer, make_price):
    # 10000, then 10 % off, then 2000 off, in order (Lago: each on what is left):
    # 10000 - 1000 = 9000; 9000 - 2000 = 7000.
    return renewal_subtotals_after_discount(_stacked(make_customer, make_price))


@override_settings(TARIF_DISCOUNT_STACKING="independent")
def stacking_independent(make_customer, make_price):
    # Each on the undiscounted 10000: 10 % = 1000 and 2000: 10000 - 3000 = 7000 (same here);
    # the difference shows with two percentages, next case.
    return renewal_subtotals_after_discount(_stacked(make_customer, make_price))


def _two_percentages(make_customer, make_price):
    return subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(10000))],
        at=START,
        trial_days=0,
        discounts=[DiscountSpec(coupon=percent_off(10)), DiscountSpec(coupon=percent_off(20))],
    )


def two_percentages_sequential(make_customer, make_price):
    # 10000 x 0.9 = 9000, then x 0.8 = 7200 (compounding, Lago's order).
    return renewal_subtotals_after_discount(_two_percentages(make_customer, make_price))


@override_settings(TARIF_DISCOUNT_STACKING="independent")
def two_percentages_independent(make_customer, make_price):
    # 10 % and 20 % of 10000 each: 1000 + 2000 = 3000 off: 7000 (not compounding).
    return renewal_subtotals_after_discount(_two_percentages(make_customer, make_price))


def stacked_amounts_never_exceed(make_customer, make_price):
    # 3000 with 2000 off and 2500 off: 3000 - 2000 = 1000, then min(2500, 1000): 0, never negative.
    sub = subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(3000))],
        at=START,
        trial_days=0,
        discounts=[DiscountSpec(coupon=amount_off(2000)), DiscountSpec(coupon=amount_off(2500))],
    )
    return renewal_subtotals_after_discount(sub)


def carry_over_three_invoices(make_customer, make_price):
    # Lago "Coupons" (fixed amount, once, carried over): 5000 off on a 2000/month plan:
    # April 2000 - 2000 = 0 (3000 left), May 0 (1000 left), June 2000 - 1000 = 1000 (0 left),
    # July 2000.
    sub = subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(2000))],
        at=START,
        trial_days=0,
        coupon=amount_off(5000, duration="once", carry_over=True),
    )
    for month in (5, 6, 7):
        billing_run_start(as_of=utc(2024, month, 1) + timedelta(hours=1))
    left = SubscriptionDiscount.objects.get(subscription=sub).carry_over_remaining
    return [*renewal_subtotals_after_discount(sub), left]


def carry_over_credit_on_cancel(make_customer, make_price):
    # 5000 carried over on 2000/month: April billed 0, so cancelling half way credits 0
    # (2000 - min(3000 left, 2000)) x 1/2 = 0, capped at what was billed (0).
    customer = make_customer()
    sub = subscription_create(
        customer=customer,
        items=[ItemSpec(make_price(2000))],
        at=START,
        trial_days=0,
        coupon=amount_off(5000, duration="once", carry_over=True),
    )
    subscription_cancel(subscription=sub, at=HALF, at_period_end=False, prorate=True)
    return customer_balance(customer_id=customer.pk, currency="EUR")


def customer_discount_applies(make_customer, make_price):
    # Stripe customer.discount: 25 % off on the customer; its subscription has none:
    # 4000 - 1000 = 3000 for April and for May.
    customer = make_customer()
    customer_discount_apply(customer=customer, coupon=percent_off(25), at=utc(2024, 3, 31))
    sub = subscription_create(customer=customer, items=[ItemSpec(make_price(4000))], at=START, trial_days=0)
    billing_run_start(as_of=utc(2024, 5, 1, 1))
    return renewal_subtotals_after_discount(sub)


def subscription_discount_wins_over_customer(make_customer, make_price):
    # Stripe: a subscription's discount wins over the customer's: 4000 with the subscription's
    # 500 off (the customer's 25 % is not used): 3500.
    customer = make_customer()
    customer_discount_apply(customer=customer, coupon=percent_off(25), at=utc(2024, 3, 31))
    sub = subscription_create(
        customer=customer, items=[ItemSpec(make_price(4000))], at=START, trial_days=0, coupon=amount_off(500)
    )
    used = CustomerDiscount.objects.get(customer=customer).periods_applied
    return [*renewal_subtotals_after_discount(sub), used]


CASES: list[tuple[Callable, object]] = [
    (amount_off_cancel, 1000),
    (amount_off_downgrade, [-1000, 250]),
    (percent_off_downgrade, [-1200, 600]),
    (removed_forever_coupon_then_downgrade, [-1200, 750]),
    (classic_after_quantity_change, 500),
    (flexible_after_quantity_change, 1500),
    (flexible_after_price_change_without_proration, 1500),
    (classic_after_price_change_without_proration, 0),
    (stacking_sequential, [7000]),
    (stacking_independent, [7000]),
    (two_percentages_sequential, [7200]),
    (two_percentages_independent, [7000]),
    (stacked_amounts_never_exceed, [0]),
    (carry_over_three_invoices, [0, 0, 1000, 2000, 0]),
    (carry_over_credit_on_cancel, 0),
    (customer_discount_applies, [3000, 3000]),
    (subscription_discount_wins_over_customer, [3500, 0]),
]


@pytest.mark.parametrize(("case", "expected"), CASES, ids=[case.__name__ for case, _expected in CASES])
def test_hand_worked_case(case, expected, make_customer, make_price):
    assert case(make_customer, make_price) == expected
