"""Issue 16, cycles: hand-worked cases for anchors from a rule, fees in arrears and minimum spend.

Each case runs the real services against the database (subscription_create, the billing
run `manage.py bill`, subscription_change, subscription_cancel) and compares the invoice a
customer receives with amounts worked by hand. Amounts are minor units (cents); every
proration is time-based, rounded once, half away from zero (docs/billing.md).

Sources:
- STRIPE_ANCHOR: Stripe, "Set the billing cycle date" (docs.stripe.com/billing/subscriptions/billing-cycle):
  `billing_cycle_anchor_config` with day_of_month 31 bills on the last day of shorter months;
  `proration_behavior=none` makes the time up to the first full invoice free.
- LAGO_ARREARS: Lago, "Plan model: pay in advance or in arrears" (docs.getlago.com/guide/plans/plan-model):
  a subscription fee paid in arrears is invoiced at the end of each period, prorated when
  the subscription ends mid-period.
- LAGO_MINIMUM: Lago, "Spending minimum" (docs.getlago.com/guide/plans/charges/spending-minimum):
  a charge whose period usage is below its minimum gets a true-up fee for the difference.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.management import call_command

from billing.cycles import AnchorConfig
from billing.models import Price, Subscription
from billing.services.changes import subscription_change
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create
from billing.services.usage import UsageEventInput, usage_events_record
from invoices.models import Invoice

# The billing services' fixtures (one brand, French VAT, customers, prices), shared with this table.
from tests.billing.services.conftest import YEARLY, billing_brand, make_customer, make_metered_price, make_price, utc  # noqa: F401, I001

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Case:
    scenario: str
    arguments: dict[str, Any]
    expected: list[tuple[str, int]]  # the (description, amount) lines of the invoice under test
    source: str


def _bill(at: datetime) -> None:
    with time_machine.travel(at, tick=False):
        call_command("bill", "--inline", "--no-progress", stdout=io.StringIO())


def _lines(invoice: Invoice) -> list[tuple[str, int]]:
    return [(line.description, line.amount) for line in invoice.lines.order_by("position", "pk")]


def _record_usage(customer, price: Price, calls: int, at: datetime) -> None:
    if not calls:
        return
    with time_machine.travel(at, tick=False):
        usage_events_record(
            events=[
                UsageEventInput(
                    customer_id=customer.pk,
                    meter_key=price.meter.key,
                    external_id="calls",
                    value=Decimal(calls),
                    timestamp=at,
                )
            ]
        )


# -- scenarios: each returns the invoice under test -----------------------------------------------


def rule_first_invoice(world, *, amount, at, rule, proration, cycle=None, renew_at=None) -> Invoice:
    """Create with an anchor rule; the first invoice, or the renewal at `renew_at`."""
    price = world["make_price"](amount, nickname="Pro", **({"cycle": cycle} if cycle else {}))
    subscription = subscription_create(
        customer=world["customer"],
        items=[ItemSpec(price)],
        at=at,
        billing_cycle_anchor_config=AnchorConfig(**rule),
        proration_behavior=proration,
    )
    if renew_at is None:
        return Invoice.objects.get(subscription=subscription, billing_reason="subscription_create")
    assert subscription.current_period_end == renew_at
    _bill(renew_at)
    return Invoice.objects.get(subscription=subscription, billing_reason="subscription_cycle", period_start=renew_at)


def _arrears_subscription(world, *, seats: int, at: datetime) -> tuple[Subscription, Price, Price]:
    platform = world["make_price"](1000, nickname="Platform")
    seat = world["make_price"](1000, nickname="Seats", billing_timing=Price.BillingTiming.IN_ARREARS)
    subscription = subscription_create(
        customer=world["customer"], items=[ItemSpec(platform), ItemSpec(seat, seats)], at=at
    )
    return subscription, platform, seat


def arrears_first(world, *, seats) -> Invoice:
    subscription, _, _ = _arrears_subscription(world, seats=seats, at=utc(2027, 4, 1))
    return Invoice.objects.get(subscription=subscription, billing_reason="subscription_create")


def arrears_renewal(world, *, seats, change_to=None, change_at=None) -> Invoice:
    subscription, platform, seat = _arrears_subscription(world, seats=seats, at=utc(2027, 4, 1))
    if change_to is not None:
        subscription_change(
            subscription=subscription, items=[ItemSpec(platform), ItemSpec(seat, change_to)], at=change_at
        )
    _bill(utc(2027, 5, 1))
    return Invoice.objects.get(
        subscription=subscription, billing_reason="subscription_cycle", period_start=utc(2027, 5, 1)
    )


def arrears_cancel_now(world, *, seats, cancel_at) -> Invoice:
    subscription, _, _ = _arrears_subscription(world, seats=seats, at=utc(2027, 4, 1))
    subscription_cancel(subscription=subscription, at=cancel_at, at_period_end=False, prorate=True)
    return Invoice.objects.get(subscription=subscription, billing_reason="subscription_update")


def minimum_spend(world, *, minimum, calls, cancel_at=None) -> Invoice:
    calls_price = world["make_metered_price"]("0.5", nickname="API calls", minimum_amount=minimum)
    customer = world["customer"]
    subscription = subscription_create(customer=customer, items=[ItemSpec(calls_price)], at=utc(2027, 4, 1))
    _record_usage(customer, calls_price, calls, utc(2027, 4, 10))
    if cancel_at is not None:
        subscription_cancel(subscription=subscription, at=cancel_at, at_period_end=False)
        return Invoice.objects.get(subscription=subscription, billing_reason="subscription_update")
    _bill(utc(2027, 5, 1))
    return Invoice.objects.get(
        subscription=subscription, billing_reason="subscription_cycle", period_start=utc(2027, 5, 1)
    )


SCENARIOS: dict[str, Callable[..., Invoice]] = {
    "rule_first_invoice": rule_first_invoice,
    "arrears_first": arrears_first,
    "arrears_renewal": arrears_renewal,
    "arrears_cancel_now": arrears_cancel_now,
    "minimum_spend": minimum_spend,
}

MIDNIGHT = {"hour": 0, "minute": 0, "second": 0}

CASES = [
    pytest.param(
        # Created 10 Apr 2027, day 31: April has 30 days, so the first date is 30 Apr, counted from 31 Mar.
        # [10 Apr, 30 Apr) = 20 days of [31 Mar, 30 Apr) = 30 days: 3000 x 20/30 = 2000.
        Case(
            "rule_first_invoice",
            {
                "amount": 3000,
                "at": utc(2027, 4, 10),
                "rule": {"day_of_month": 31, **MIDNIGHT},
                "proration": "create_prorations",
            },
            [("Remaining time on Pro", 2000)],
            "STRIPE_ANCHOR",
        ),
        id="anchor-day31-april-prorated",
    ),
    pytest.param(
        # Same, proration_behavior=none: the 20 days are free; first invoice 0.
        Case(
            "rule_first_invoice",
            {"amount": 3000, "at": utc(2027, 4, 10), "rule": {"day_of_month": 31, **MIDNIGHT}, "proration": "none"},
            [("Free period until the first billing date for Pro", 0)],
            "STRIPE_ANCHOR",
        ),
        id="anchor-day31-april-free",
    ),
    pytest.param(
        # ... and the first renewal on 30 Apr bills the full period [30 Apr, 31 May): 3000.
        Case(
            "rule_first_invoice",
            {
                "amount": 3000,
                "at": utc(2027, 4, 10),
                "rule": {"day_of_month": 31, **MIDNIGHT},
                "proration": "none",
                "renew_at": utc(2027, 4, 30),
            },
            [("Pro", 3000)],
            "STRIPE_ANCHOR",
        ),
        id="anchor-day31-april-free-then-full",
    ),
    pytest.param(
        # Created 10 Feb 2027, day 31: first date 28 Feb (clamped), counted from 31 Jan.
        # [10 Feb, 28 Feb) = 18 days of [31 Jan, 28 Feb) = 28 days: 3000 x 18/28 = 1928.57 -> 1929.
        Case(
            "rule_first_invoice",
            {
                "amount": 3000,
                "at": utc(2027, 2, 10),
                "rule": {"day_of_month": 31, **MIDNIGHT},
                "proration": "create_prorations",
            },
            [("Remaining time on Pro", 1929)],
            "STRIPE_ANCHOR",
        ),
        id="anchor-day31-february-prorated",
    ),
    pytest.param(
        # Same without proration; the renewal on 28 Feb bills [28 Feb, 31 Mar) in full: 3000.
        Case(
            "rule_first_invoice",
            {
                "amount": 3000,
                "at": utc(2027, 2, 10),
                "rule": {"day_of_month": 31, **MIDNIGHT},
                "proration": "none",
                "renew_at": utc(2027, 2, 28),
            },
            [("Pro", 3000)],
            "STRIPE_ANCHOR",
        ),
        id="anchor-day31-february-free-then-full",
    ),
    pytest.param(
        # Yearly 12000 from 1 Apr 2027 on 1 January: [1 Apr 2027, 1 Jan 2028) = 275 of 365 days:
        # 12000 x 275/365 = 9041.10 -> 9041.
        Case(
            "rule_first_invoice",
            {
                "amount": 12000,
                "cycle": YEARLY,
                "at": utc(2027, 4, 1),
                "rule": {"day_of_month": 1, "month": 1, **MIDNIGHT},
                "proration": "create_prorations",
            },
            [("Remaining time on Pro", 9041)],
            "STRIPE_ANCHOR (hand-worked numbers)",
        ),
        id="anchor-yearly-month-1",
    ),
    pytest.param(
        # Platform 1000 in advance, 3 seats x 1000 in arrears, from 1 Apr: the first invoice bills Platform only.
        Case("arrears_first", {"seats": 3}, [("Platform", 1000)], "LAGO_ARREARS"),
        id="arrears-first-invoice",
    ),
    pytest.param(
        # Renewal on 1 May: Platform for May (1000) + April's 3 seats in arrears (3 x 1000 = 3000).
        Case("arrears_renewal", {"seats": 3}, [("Platform", 1000), ("Seats (in arrears)", 3000)], "LAGO_ARREARS"),
        id="arrears-renewal",
    ),
    pytest.param(
        # 2 -> 4 seats on 16 Apr: 2 seats x [1 Apr, 16 Apr) = 2000 x 15/30 = 1000 (pending item, swept up);
        # 4 seats x [16 Apr, 1 May) = 4000 x 15/30 = 2000; Platform 1000 for May.
        Case(
            "arrears_renewal",
            {"seats": 2, "change_to": 4, "change_at": utc(2027, 4, 16)},
            [("Platform", 1000), ("Time used on Seats (in arrears)", 2000), ("Time used on Seats (in arrears)", 1000)],
            "LAGO_ARREARS (hand-worked numbers)",
        ),
        id="arrears-quantity-change-mid-period",
    ),
    pytest.param(
        # Cancelled now on 11 Apr: 3 seats x [1 Apr, 11 Apr) = 3000 x 10/30 = 1000 on the final invoice;
        # the platform fee paid in advance is credited to the balance, not invoiced.
        Case(
            "arrears_cancel_now",
            {"seats": 3, "cancel_at": utc(2027, 4, 11)},
            [("Time used on Seats (in arrears)", 1000)],
            "LAGO_ARREARS",
        ),
        id="arrears-last-invoice-cancel-now",
    ),
    pytest.param(
        # 0.5 cent per call, minimum 5000 per month, 2000 calls: usage 1000 < 5000 -> true-up 5000 - 1000 = 4000.
        Case(
            "minimum_spend",
            {"minimum": 5000, "calls": 2000},
            [("API calls (usage)", 1000), ("Minimum spend adjustment for API calls", 4000)],
            "LAGO_MINIMUM",
        ),
        id="minimum-spend-true-up",
    ),
    pytest.param(
        # 20000 calls: usage 10000 >= 5000: no true-up.
        Case("minimum_spend", {"minimum": 5000, "calls": 20000}, [("API calls (usage)", 10000)], "LAGO_MINIMUM"),
        id="minimum-spend-above",
    ),
    pytest.param(
        # Cancelled on 16 Apr with no usage: minimum 5000 x [1 Apr, 16 Apr) / 30 days = 5000 x 15/30 = 2500.
        Case(
            "minimum_spend",
            {"minimum": 5000, "calls": 0, "cancel_at": utc(2027, 4, 16)},
            [("API calls (usage)", 0), ("Minimum spend adjustment for API calls", 2500)],
            "hand-worked",
        ),
        id="minimum-spend-prorated-on-cancel",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_case(case: Case, make_customer, make_price, make_metered_price):  # noqa: F811
    world = {"customer": make_customer(), "make_price": make_price, "make_metered_price": make_metered_price}

    invoice = SCENARIOS[case.scenario](world, **case.arguments)

    assert sorted(_lines(invoice)) == sorted(case.expected), case.source
