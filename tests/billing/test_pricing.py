from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.pricing import PricingError, Tier, price_amount, round_fraction, validate_tiers

# 1-5 at 10.00, 6-10 at 8.00 plus 25.00 once, 11+ at 6.00
SEATS = (
    Tier(up_to=5, unit_amount=Decimal("1000")),
    Tier(up_to=10, unit_amount=Decimal("800"), flat_amount=2500),
    Tier(up_to=None, unit_amount=Decimal("600")),
)
# base fee of 200.00 including 100 units, then 1.50 per unit
BASE_FEE = (
    Tier(up_to=100, unit_amount=Decimal("0"), flat_amount=20000),
    Tier(up_to=None, unit_amount=Decimal("150")),
)
# half a cent per call in every tier: rounding per tier would differ from rounding once
HALF_CENT = (Tier(up_to=1, unit_amount=Decimal("0.5")), Tier(up_to=None, unit_amount=Decimal("0.5")))


@pytest.mark.parametrize(
    ("case", "kwargs", "expected"),
    [
        ("per unit", dict(scheme="per_unit", quantity=3, unit_amount=Decimal("2900")), 8700),
        ("per unit, nothing used", dict(scheme="per_unit", quantity=0, unit_amount=Decimal("2900")), 0),
        ("int unit amount", dict(scheme="per_unit", quantity=2, unit_amount=2900), 5800),
        (
            "half a cent per call, half up",
            dict(scheme="per_unit", quantity=12345, unit_amount=Decimal("0.5")),
            6173,
        ),
        ("fraction of a cent total", dict(scheme="per_unit", quantity=3, unit_amount=Decimal("0.333")), 1),
        ("graduated, zero seats", dict(scheme="tiered_graduated", quantity=0, tiers=SEATS), 0),
        ("graduated, last unit of tier 1", dict(scheme="tiered_graduated", quantity=5, tiers=SEATS), 5000),
        ("graduated, first unit of tier 2", dict(scheme="tiered_graduated", quantity=6, tiers=SEATS), 8300),
        ("graduated, last unit of tier 2", dict(scheme="tiered_graduated", quantity=10, tiers=SEATS), 11500),
        ("graduated, first unit of tier 3", dict(scheme="tiered_graduated", quantity=11, tiers=SEATS), 12100),
        ("graduated, deep in tier 3", dict(scheme="tiered_graduated", quantity=25, tiers=SEATS), 20500),
        ("volume, zero seats", dict(scheme="tiered_volume", quantity=0, tiers=SEATS), 0),
        ("volume, last unit of tier 1", dict(scheme="tiered_volume", quantity=5, tiers=SEATS), 5000),
        ("volume, first unit of tier 2", dict(scheme="tiered_volume", quantity=6, tiers=SEATS), 7300),
        ("volume, last unit of tier 2", dict(scheme="tiered_volume", quantity=10, tiers=SEATS), 10500),
        ("volume, first unit of tier 3", dict(scheme="tiered_volume", quantity=11, tiers=SEATS), 6600),
        ("base fee billed without usage", dict(scheme="tiered_graduated", quantity=0, tiers=BASE_FEE), 20000),
        (
            "base fee, included units used",
            dict(scheme="tiered_graduated", quantity=100, tiers=BASE_FEE),
            20000,
        ),
        ("base fee plus one overage", dict(scheme="tiered_graduated", quantity=101, tiers=BASE_FEE), 20150),
        ("volume, base fee tier", dict(scheme="tiered_volume", quantity=0, tiers=BASE_FEE), 20000),
        (
            "graduated rounds once, not per tier",
            dict(scheme="tiered_graduated", quantity=2, tiers=HALF_CENT),
            1,
        ),
        ("graduated half cent rounds up", dict(scheme="tiered_graduated", quantity=3, tiers=HALF_CENT), 2),
        (
            "package, started package billed",
            dict(scheme="package", quantity=101, unit_amount=Decimal("2000"), package_size=100),
            4000,
        ),
        (
            "package, full packages only",
            dict(scheme="package", quantity=101, unit_amount=2000, package_size=100, package_rounding="down"),
            2000,
        ),
        (
            "package, exact fit",
            dict(scheme="package", quantity=100, unit_amount=2000, package_size=100),
            2000,
        ),
        ("package, nothing used", dict(scheme="package", quantity=0, unit_amount=2000, package_size=100), 0),
    ],
)
def test_price_amount_hand_worked(case, kwargs, expected):
    # given a price and a quantity (kwargs) / when priced
    amount = price_amount(**kwargs)

    # then the hand-computed minor units come out, as an int
    assert amount == expected, case
    assert type(amount) is int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(5, 2), 3),
        (Fraction(-5, 2), -3),
        (Fraction(1, 3), 0),
        (Fraction(2, 3), 1),
        (Fraction(-2, 3), -1),
        (Fraction(1, 2) - Fraction(1, 10**30), 0),  # just below the half: truncation must not round it up
        (Fraction(1, 2) + Fraction(1, 10**30), 1),
        (Fraction(10**20 * 3 + 1, 2), 15 * 10**19 + 1),
        (7, 7),
    ],
)
def test_round_fraction_rounds_the_exact_value_half_away_from_zero(value, expected):
    assert round_fraction(value) == expected


def test_round_fraction_refuses_floats():
    with pytest.raises(TypeError):
        round_fraction(0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(scheme="per_unit", quantity=-1, unit_amount=Decimal(1)), "quantity must not be negative"),
        (dict(scheme="flat", quantity=1, unit_amount=Decimal(1)), "unknown billing scheme"),
        (dict(scheme="per_unit", quantity=1), "needs a unit_amount"),
        (dict(scheme="per_unit", quantity=1, unit_amount=Decimal(-1)), "must not be negative"),
        (dict(scheme="per_unit", quantity=1, unit_amount=Decimal("NaN")), "finite"),
        (dict(scheme="per_unit", quantity=1, unit_amount=Decimal(1), tiers=SEATS), "has no tiers"),
        (dict(scheme="tiered_volume", quantity=1, unit_amount=Decimal(1), tiers=SEATS), "from tiers"),
        (dict(scheme="tiered_graduated", quantity=1), "at least one tier"),
        (dict(scheme="package", quantity=1, unit_amount=Decimal(1), package_size=0), "package_size"),
        (
            dict(scheme="package", quantity=1, unit_amount=Decimal(1), package_rounding="nearest"),
            "package_rounding",
        ),
    ],
)
def test_price_amount_rejects_bad_input_with_a_clear_message(kwargs, message):
    with pytest.raises(PricingError, match=message):
        price_amount(**kwargs)


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ((), "at least one tier"),
        ((Tier(up_to=10, unit_amount=Decimal(1)),), "last tier must be open-ended"),
        (
            (Tier(up_to=None, unit_amount=Decimal(1)), Tier(up_to=None, unit_amount=Decimal(1))),
            "only the last",
        ),
        (
            (
                Tier(up_to=10, unit_amount=Decimal(1)),
                Tier(up_to=10, unit_amount=Decimal(1)),
                Tier(up_to=None, unit_amount=Decimal(1)),
            ),
            "ascend strictly",
        ),
        (
            (
                Tier(up_to=20, unit_amount=Decimal(1)),
                Tier(up_to=10, unit_amount=Decimal(1)),
                Tier(up_to=None, unit_amount=Decimal(1)),
            ),
            "ascend strictly",
        ),
    ],
)
def test_validate_tiers_rejects_malformed_tiers(tiers, message):
    with pytest.raises(PricingError, match=message):
        validate_tiers(tiers)


def test_tier_rejects_impossible_values():
    with pytest.raises(PricingError, match="at least 1"):
        Tier(up_to=0, unit_amount=Decimal(1))
    with pytest.raises(PricingError, match="flat_amount must not be negative"):
        Tier(up_to=None, unit_amount=Decimal(1), flat_amount=-1)
    with pytest.raises(PricingError, match="unit_amount must not be negative"):
        Tier(up_to=None, unit_amount=Decimal(-1))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(scheme="per_unit", quantity=1, unit_amount=0.5),
        dict(scheme="per_unit", quantity=1.0, unit_amount=Decimal(1)),
        dict(scheme="per_unit", quantity=True, unit_amount=Decimal(1)),
        dict(scheme="package", quantity=1, unit_amount=Decimal(1), package_size=2.0),
    ],
)
def test_floats_and_bools_never_touch_money(kwargs):
    with pytest.raises(TypeError):
        price_amount(**kwargs)


def test_tier_refuses_a_float_unit_amount():
    with pytest.raises(TypeError):
        Tier(up_to=None, unit_amount=0.5)


unit_amounts = st.decimals(min_value=0, max_value=100_000, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def tier_lists(draw, max_tiers=5):
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=1_000), max_size=max_tiers - 1)))
    return tuple(
        Tier(up_to=up_to, unit_amount=draw(unit_amounts), flat_amount=draw(st.integers(0, 100_000)))
        for up_to in [*bounds, None]
    )


@given(tiers=tier_lists(), quantity=st.integers(0, 2_000), more=st.integers(0, 2_000))
def test_graduated_amount_never_decreases_when_quantity_grows(tiers, quantity, more):
    # given valid tiers / when the quantity grows
    smaller = price_amount(scheme="tiered_graduated", quantity=quantity, tiers=tiers)
    larger = price_amount(scheme="tiered_graduated", quantity=quantity + more, tiers=tiers)

    # then the amount does not go down
    assert larger >= smaller >= 0


@given(unit_amount=unit_amounts, flat_amount=st.integers(0, 100_000), quantity=st.integers(0, 10_000))
def test_volume_and_graduated_agree_on_a_single_tier(unit_amount, flat_amount, quantity):
    # given a single open tier
    tiers = (Tier(up_to=None, unit_amount=unit_amount, flat_amount=flat_amount),)

    # when priced both ways / then they agree, and per-unit agrees when there is no flat fee
    graduated = price_amount(scheme="tiered_graduated", quantity=quantity, tiers=tiers)
    assert price_amount(scheme="tiered_volume", quantity=quantity, tiers=tiers) == graduated
    per_unit = price_amount(scheme="per_unit", quantity=quantity, unit_amount=unit_amount)
    assert graduated == per_unit + flat_amount


@given(tiers=tier_lists(), quantity=st.integers(0, 2_000))
def test_graduated_is_the_sum_of_exact_tier_amounts_rounded_once(tiers, quantity):
    # given tiers / when priced / then the result is within half a minor unit of the exact sum
    exact = Fraction(0)
    previous_bound = 0
    for position, tier in enumerate(tiers):
        if position > 0 and quantity <= previous_bound:
            break  # tier not reached
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        exact += (upper - previous_bound) * Fraction(tier.unit_amount) + tier.flat_amount
        previous_bound = tier.up_to or 0
    amount = price_amount(scheme="tiered_graduated", quantity=quantity, tiers=tiers)
    assert abs(amount - exact) <= Fraction(1, 2)
