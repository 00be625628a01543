"""The percent-discount rule lives once, in invoices.calculations.percent_discount.

The invoice totals and proration's "what the discounted period charged"
(billing.selectors.item_charges) both read it, so a credit for unused time returns
exactly what the discount left on the invoice line.
"""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.models import Price
from billing.selectors import ItemSnapshot, item_charges
from invoices.calculations import (
    CalculationError,
    DiscountInput,
    LineInput,
    compute_invoice_totals,
    percent_discount,
)


@pytest.mark.parametrize(
    ("amount", "percent", "taken"),
    [
        (10000, Decimal("10"), 1000),
        (25, Decimal("10"), 3),  # 2.5 rounds half away from zero, not to the even 2
        (35, Decimal("10"), 4),  # 3.5 -> 4
        (2900, Decimal("33.333"), 967),  # 966.657 -> 967
        (1, Decimal("50"), 1),  # 0.5 -> 1
        (1, Decimal("49.99"), 0),
        (999, Decimal("100"), 999),
        (0, Decimal("20"), 0),
        (-500, Decimal("20"), 0),  # credits are never discounted
    ],
)
def test_the_percent_discount_rule(amount, percent, taken):
    assert percent_discount(amount, percent) == taken


@pytest.mark.parametrize("percent", [Decimal(0), Decimal("-5"), Decimal("100.01"), Decimal("NaN")])
def test_a_percentage_outside_0_to_100_is_refused(percent):
    with pytest.raises(CalculationError):
        percent_discount(1000, percent)


def test_floats_never_touch_the_rule():
    with pytest.raises(TypeError):
        percent_discount(1000, 10.0)
    with pytest.raises(TypeError):
        percent_discount(10.0, Decimal(10))


def _price(pk: int, unit_amount: int) -> Price:
    return Price(
        pk=pk,
        product_id=pk,
        currency="EUR",
        scheme=Price.Scheme.PER_UNIT,
        unit_amount=Decimal(unit_amount),
        usage_type=Price.UsageType.LICENSED,
    )


@given(
    items=st.lists(
        st.tuples(st.integers(min_value=0, max_value=99_999), st.integers(min_value=1, max_value=50)),
        min_size=1,
        max_size=4,
    ),
    percent=st.decimals(min_value="0.01", max_value=100, places=3),
    limit_to_first=st.booleans(),
)
def test_proration_takes_off_what_the_invoice_line_took_off(items, percent, limit_to_first):
    # given subscription items and a percent coupon (maybe limited to the first item's product)
    snapshots = [
        ItemSnapshot(price=_price(index + 1, unit), quantity=quantity, label=f"item {index}")
        for index, (unit, quantity) in enumerate(items)
    ]
    products = frozenset({snapshots[0].product_key}) if limit_to_first else None
    discount = DiscountInput(percent_off=percent, products=products)

    # when the period is invoiced, and when proration reads what the period charged
    totals = compute_invoice_totals(
        currency="EUR",
        lines=[
            LineInput(amount=item.full_amount(), tax_rate=Decimal(0), tax_category="O", product_key=item.product_key)
            for item in snapshots
        ],
        discounts=[discount],
    )
    charges = item_charges(snapshots, discount=discount)

    # then each item's credit base is exactly the invoice line after its discount
    assert [charge.amount for charge in charges] == [line.amount - line.discount_amount for line in totals.lines]


def test_negative_control_a_truncating_copy_would_disagree():
    # The property above would catch a copy that rounds differently: 25 x 10 % is 2.5.
    truncated = int(Fraction(25) * Fraction(10) / 100)
    assert truncated != percent_discount(25, Decimal(10))
    totals = compute_invoice_totals(
        currency="EUR",
        lines=[LineInput(amount=25, tax_rate=Decimal(0), tax_category="O")],
        discounts=[DiscountInput(percent_off=Decimal(10))],
    )
    assert totals.discount_total == 3 != truncated
