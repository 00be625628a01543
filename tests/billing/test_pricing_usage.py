"""Issue 16 (usage): the pure pricing functions for package free units and percentage pricing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.limits import MAX_AMOUNT
from billing.pricing import (
    PercentageRule,
    PricingError,
    package_amount_with_free_units,
    percentage_amount,
    usage_filter_matches,
)


def test_package_free_units_follow_lagos_example():
    amounts = [
        package_amount_with_free_units(quantity=q, unit_amount=500, package_size=100, free_units=100)
        for q in (0, 100, 101, 200, 201)
    ]
    assert amounts == [0, 0, 500, 500, 1000]


def test_package_free_units_refuse_negative_values():
    with pytest.raises(PricingError):
        package_amount_with_free_units(quantity=5, unit_amount=500, package_size=100, free_units=-1)
    with pytest.raises(PricingError):
        package_amount_with_free_units(quantity=-5, unit_amount=500, package_size=100, free_units=0)


def test_percentage_bounds_apply_per_transaction_and_the_fixed_fee_after_free_events():
    rule = PercentageRule(rate=Decimal(2), fixed_amount=Decimal(5), free_events=1, per_transaction_min=Decimal(50))
    # t1: 2 % of 100 = 2 -> min 50, no fixed fee (free event); t2: 2 % of 10000 = 200, + 5.
    assert percentage_amount(transactions=[Decimal(100), Decimal(10000)], rule=rule) == 50 + 205


def test_a_wholly_free_transaction_bears_no_minimum():
    rule = PercentageRule(rate=Decimal(1), free_amount=Decimal(1000), per_transaction_min=Decimal(50))
    assert percentage_amount(transactions=[Decimal(400), Decimal(600)], rule=rule) == 0
    # Negative control: one cent beyond the free amount brings the minimum.
    assert percentage_amount(transactions=[Decimal(400), Decimal(601)], rule=rule) == 50


@pytest.mark.parametrize(
    "fields",
    [
        {"rate": Decimal(101)},
        {"rate": Decimal(-1)},
        {"rate": Decimal(1), "per_transaction_min": Decimal(10), "per_transaction_max": Decimal(5)},
        {"rate": Decimal(1), "free_events": -1},
        {"rate": Decimal(1), "fixed_amount": Decimal(-1)},
    ],
)
def test_incoherent_percentage_rules_are_refused(fields):
    with pytest.raises(PricingError):
        PercentageRule(**fields)


@given(
    transactions=st.lists(st.integers(min_value=0, max_value=10**7), max_size=30),
    rate=st.decimals(min_value=0, max_value=100, places=3),
    fixed=st.integers(min_value=0, max_value=1000),
    free_events=st.integers(min_value=0, max_value=40),
    free_amount=st.integers(min_value=0, max_value=MAX_AMOUNT),
)
def test_percentage_fees_never_exceed_rate_on_everything_plus_every_fixed_fee(
    transactions, rate, fixed, free_events, free_amount
):
    rule = PercentageRule(rate=rate, fixed_amount=Decimal(fixed), free_events=free_events, free_amount=free_amount)
    amount = percentage_amount(transactions=transactions, rule=rule)
    ceiling = sum(transactions) * rate / 100 + fixed * len(transactions)
    assert 0 <= amount <= ceiling + Decimal("0.5")


def test_filters_need_every_key_and_one_of_its_values():
    usage_filter = {"region": ["eu", "uk"], "model": ["large"]}
    assert usage_filter_matches(usage_filter=usage_filter, properties={"region": "uk", "model": "large", "x": "1"})
    assert not usage_filter_matches(usage_filter=usage_filter, properties={"region": "uk"})
    assert not usage_filter_matches(usage_filter=usage_filter, properties={"region": "us", "model": "large"})
