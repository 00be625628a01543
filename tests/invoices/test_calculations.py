from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.pricing import round_fraction
from config.money import CurrencyError
from invoices.calculations import (
    CalculationError,
    DiscountInput,
    InvoiceTotals,
    LineInput,
    TaxGroup,
    compute_invoice_totals,
)

VAT_20 = Decimal("20")
VAT_5_5 = Decimal("5.5")


def line(amount: int, rate: Decimal = VAT_20, **kwargs) -> LineInput:
    return LineInput(amount=amount, tax_rate=rate, **kwargs)


def test_one_line_at_20_percent():
    # given one 10.00 line at 20% / when totalled
    totals = compute_invoice_totals(currency="EUR", lines=[line(1000)])

    # then 2.00 of VAT is added
    assert (
        totals.subtotal,
        totals.discount_total,
        totals.tax_total,
        totals.total,
        totals.total_excluding_tax,
    ) == (
        1000,
        0,
        200,
        1200,
        1000,
    )
    assert totals.tax_breakdown == (
        TaxGroup(category="S", rate=VAT_20, inclusive=False, taxable_amount=1000, tax_amount=200),
    )


def test_mixed_rates_round_once_per_group():
    # given 19.99 at 20% and two 10.10 lines at 5.5% (55.55 cents of VAT each)
    totals = compute_invoice_totals(currency="EUR", lines=[line(1999), line(1010, VAT_5_5), line(1010, VAT_5_5)])

    # then each group is rounded once: 399.8 -> 400 and 111.1 -> 111 (not 56 + 56)
    assert [(group.rate, group.taxable_amount, group.tax_amount) for group in totals.tax_breakdown] == [
        (VAT_20, 1999, 400),
        (VAT_5_5, 2020, 111),
    ]
    assert [line_totals.tax_amount for line_totals in totals.lines] == [400, 56, 55]
    assert (totals.subtotal, totals.tax_total, totals.total) == (4019, 511, 4530)


def test_tax_inclusive_line():
    # given a 12.00 price that includes 20% VAT
    totals = compute_invoice_totals(currency="EUR", lines=[line(1200, tax_inclusive=True)])

    # then 2.00 of it is VAT, and the total is still 12.00
    assert totals.tax_breakdown == (
        TaxGroup(category="S", rate=VAT_20, inclusive=True, taxable_amount=1000, tax_amount=200),
    )
    assert (totals.subtotal, totals.tax_total, totals.total, totals.total_excluding_tax) == (
        1200,
        200,
        1200,
        1000,
    )


def test_tax_inclusive_half_cent_rounds_away_from_zero():
    # given 9.99 including 20% VAT: 999 / 6 = 166.5
    totals = compute_invoice_totals(currency="EUR", lines=[line(999, tax_inclusive=True)])

    # then the VAT is 1.67 and the net 8.32
    assert (totals.tax_total, totals.total_excluding_tax, totals.total) == (167, 832, 999)


def test_ten_percent_coupon():
    # given 29.00 and 99.00 at 20% with a 10% coupon
    totals = compute_invoice_totals(
        currency="EUR", lines=[line(2900), line(9900)], discounts=[DiscountInput(percent_off=Decimal("10"))]
    )

    # then 12.80 is taken off and VAT is computed on 115.20
    assert [line_totals.discount_amount for line_totals in totals.lines] == [290, 990]
    assert (totals.discount_total, totals.tax_total, totals.total) == (1280, 2304, 13824)


def test_fixed_coupon_spreads_remainder_cents_over_three_lines():
    # given three 10.00 lines and a 5.00 coupon: 166.67 cents each
    totals = compute_invoice_totals(
        currency="EUR", lines=[line(1000), line(1000), line(1000)], discounts=[DiscountInput(amount_off=500)]
    )

    # then the two leftover cents go to the earliest lines, and the shares add up to 5.00
    assert [line_totals.discount_amount for line_totals in totals.lines] == [167, 167, 166]
    assert (totals.discount_total, totals.total_excluding_tax, totals.tax_total, totals.total) == (
        500,
        2500,
        500,
        3000,
    )


def test_fixed_coupon_is_shared_in_proportion_to_line_amounts():
    # given 30.00 and 10.00 with a 10.00 coupon / then 7.50 and 2.50 come off
    totals = compute_invoice_totals(
        currency="EUR", lines=[line(3000), line(1000)], discounts=[DiscountInput(amount_off=1000)]
    )
    assert [line_totals.discount_amount for line_totals in totals.lines] == [750, 250]


def test_coupon_limited_to_one_product():
    # given a plan and seats, with 50% off seats only
    totals = compute_invoice_totals(
        currency="EUR",
        lines=[line(2900, product_key="prod_plan"), line(1000, product_key="prod_seats")],
        discounts=[DiscountInput(percent_off=Decimal("50"), products=frozenset({"prod_seats"}))],
    )

    # then only the seats are discounted
    assert [line_totals.discount_amount for line_totals in totals.lines] == [0, 500]
    assert (totals.discount_total, totals.tax_total, totals.total) == (500, 680, 4080)


def test_credit_line_from_proration_is_not_discounted_and_reduces_tax():
    # given the charge and credit of a mid-month upgrade, with a 10% coupon
    totals = compute_invoice_totals(
        currency="EUR", lines=[line(4950), line(-1450)], discounts=[DiscountInput(percent_off=Decimal("10"))]
    )

    # then only the charge is discounted, and the VAT is on the net 30.05
    assert [line_totals.discount_amount for line_totals in totals.lines] == [495, 0]
    assert [line_totals.tax_amount for line_totals in totals.lines] == [891, -290]
    assert (totals.subtotal, totals.discount_total, totals.tax_total, totals.total) == (3500, 495, 601, 3606)


def test_group_mixing_charges_and_credits_keeps_line_tax_near_exact():
    # given 10.04 and -9.99 at 20%: the group owes round(1.00) = 1 cent
    totals = compute_invoice_totals(currency="EUR", lines=[line(1004), line(-999)])

    # then each line keeps its own tax (200.8 and -199.8), not a proportional share of 1 cent
    assert totals.tax_total == 1
    assert [line_totals.tax_amount for line_totals in totals.lines] == [201, -200]


def test_reverse_charge_line():
    # given a B2B sale to another member state: AE at 0%
    totals = compute_invoice_totals(currency="EUR", lines=[line(9900, Decimal("0"), tax_category="AE")])

    # then no VAT is charged, and the breakdown shows the reverse-charge base
    assert (totals.tax_total, totals.total) == (0, 9900)
    assert totals.tax_breakdown == (
        TaxGroup(category="AE", rate=Decimal("0"), inclusive=False, taxable_amount=9900, tax_amount=0),
    )


def test_zero_decimal_currency():
    # given yen amounts (no minor digits) at Japan's 10% and 8% rates
    totals = compute_invoice_totals(currency="jpy", lines=[line(980, Decimal("10")), line(999, Decimal("8"))])

    # then tax rounds to whole yen: 98 and 79.92 -> 80
    assert totals.currency == "JPY"
    assert [group.tax_amount for group in totals.tax_breakdown] == [98, 80]
    assert totals.total == 2157


def test_fixed_coupon_never_exceeds_what_it_may_discount():
    # given a 50.00 coupon, a 30.00 discountable line and a 10.00 line that is not
    totals = compute_invoice_totals(
        currency="EUR",
        lines=[line(3000), line(1000, discountable=False)],
        discounts=[DiscountInput(amount_off=5000)],
    )

    # then only 30.00 comes off and no line goes negative
    assert totals.discount_amounts == (3000,)
    assert [line_totals.discount_amount for line_totals in totals.lines] == [3000, 0]
    assert totals.total == 1200


def test_discounts_apply_in_order():
    # given 100.00 with 10% and 5.00 off, in both orders
    ten_percent, five_off = DiscountInput(percent_off=Decimal("10")), DiscountInput(amount_off=500)
    first = compute_invoice_totals(currency="EUR", lines=[line(10000)], discounts=[ten_percent, five_off])
    second = compute_invoice_totals(currency="EUR", lines=[line(10000)], discounts=[five_off, ten_percent])

    # then each discount applies to what the previous ones left
    assert first.discount_amounts == (1000, 500)
    assert second.discount_amounts == (500, 950)


def test_inclusive_line_with_coupon():
    # given 12.00 including 20% VAT with 10% off / then VAT is on the discounted 10.80
    totals = compute_invoice_totals(
        currency="EUR",
        lines=[line(1200, tax_inclusive=True)],
        discounts=[DiscountInput(percent_off=Decimal("10"))],
    )
    assert (totals.discount_total, totals.tax_total, totals.total_excluding_tax, totals.total) == (
        120,
        180,
        900,
        1080,
    )


def test_empty_invoice():
    totals = compute_invoice_totals(currency="EUR", lines=[])
    assert totals == InvoiceTotals(
        currency="EUR",
        subtotal=0,
        discount_total=0,
        tax_total=0,
        total=0,
        total_excluding_tax=0,
        lines=(),
        tax_breakdown=(),
        discount_amounts=(),
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: compute_invoice_totals(currency="EUR", lines=[line(100, currency="USD")]),
            "in USD but the invoice",
        ),
        (
            lambda: compute_invoice_totals(
                currency="EUR", lines=[line(100)], discounts=[DiscountInput(amount_off=100, currency="USD")]
            ),
            "in USD but the invoice",
        ),
        (lambda: line(100, Decimal("-1")), "between 0 and 100"),
        (lambda: line(100, Decimal("100.01")), "between 0 and 100"),
        (lambda: line(100, Decimal("0")), "category S"),
        (lambda: line(100, VAT_20, tax_category="AE"), "charged at 0%"),
        (lambda: line(100, Decimal("0"), tax_category="XX"), "unknown tax category"),
        (lambda: DiscountInput(percent_off=Decimal("0")), "percent_off"),
        (lambda: DiscountInput(percent_off=Decimal("100.5")), "percent_off"),
        (lambda: DiscountInput(amount_off=-1), "must not be negative"),
        (lambda: DiscountInput(), "exactly one"),
        (lambda: DiscountInput(percent_off=Decimal("10"), amount_off=100), "exactly one"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(build, message):
    with pytest.raises(CalculationError, match=message):
        build()


def test_unknown_currency_is_refused():
    with pytest.raises(CurrencyError):
        compute_invoice_totals(currency="XYZ", lines=[line(100)])


@pytest.mark.parametrize(
    "build",
    [
        lambda: LineInput(amount=10.0, tax_rate=VAT_20),
        lambda: LineInput(amount=1000, tax_rate=20.0),
        lambda: DiscountInput(percent_off=10.0),
        lambda: DiscountInput(amount_off=5.0),
    ],
)
def test_floats_never_touch_money(build):
    with pytest.raises(TypeError):
        build()


rates = st.sampled_from(
    [
        ("S", Decimal("20")),
        ("S", Decimal("5.5")),
        ("S", Decimal("2.1")),
        ("S", Decimal("19")),
        ("S", Decimal("8.5")),
        ("S", Decimal("100")),
        ("Z", Decimal("0")),
        ("E", Decimal("0")),
        ("AE", Decimal("0")),
        ("O", Decimal("0")),
    ]
) | st.tuples(st.just("S"), st.decimals(min_value="0.01", max_value=100, places=3))
line_inputs = st.builds(
    lambda amount, category_rate, inclusive, discountable, product: LineInput(
        amount=amount,
        tax_rate=category_rate[1],
        tax_category=category_rate[0],
        tax_inclusive=inclusive,
        discountable=discountable,
        product_key=product,
    ),
    st.integers(-(10**6), 10**8),
    rates,
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, "a", "b"]),
)
product_sets = st.none() | st.frozensets(st.sampled_from(["a", "b", "c"]))
discount_inputs = st.builds(
    DiscountInput, percent_off=st.decimals(min_value="0.01", max_value=100, places=2), products=product_sets
) | st.builds(DiscountInput, amount_off=st.integers(0, 10**7), products=product_sets)


@given(lines=st.lists(line_inputs, max_size=8), discounts=st.lists(discount_inputs, max_size=3))
def test_totals_identities_hold_exactly(lines, discounts):
    # given any lines and discounts / when totalled
    totals = compute_invoice_totals(currency="EUR", lines=lines, discounts=discounts)

    # then the invoice adds up exactly
    exclusive_tax = sum(group.tax_amount for group in totals.tax_breakdown if not group.inclusive)
    assert totals.subtotal == sum(item.amount for item in lines)
    assert totals.total == totals.subtotal - totals.discount_total + exclusive_tax
    assert totals.total_excluding_tax == totals.total - totals.tax_total
    assert totals.total_excluding_tax == sum(group.taxable_amount for group in totals.tax_breakdown)
    assert totals.total_excluding_tax == sum(item.taxable_amount for item in totals.lines)
    assert totals.total == sum(item.total for item in totals.lines)
    # and the per-line shares add up to the totals
    assert sum(item.tax_amount for item in totals.lines) == totals.tax_total
    assert sum(item.discount_amount for item in totals.lines) == totals.discount_total == sum(totals.discount_amounts)


@given(lines=st.lists(line_inputs, max_size=8), discounts=st.lists(discount_inputs, max_size=3))
def test_discounts_stay_within_what_may_be_discounted(lines, discounts):
    totals = compute_invoice_totals(currency="EUR", lines=lines, discounts=discounts)

    eligible_subtotal = sum(item.amount for item in lines if item.discountable and item.amount > 0)
    assert 0 <= totals.discount_total <= eligible_subtotal
    for item, result in zip(lines, totals.lines, strict=True):
        if item.discountable and item.amount > 0:
            assert 0 <= result.discount_amount <= item.amount
        else:
            assert result.discount_amount == 0


@given(lines=st.lists(line_inputs, min_size=1, max_size=8), discounts=st.lists(discount_inputs, max_size=3))
def test_tax_is_rounded_once_per_group_and_line_shares_stay_near_exact(lines, discounts):
    totals = compute_invoice_totals(currency="EUR", lines=lines, discounts=discounts)

    for group in totals.tax_breakdown:
        rate = Fraction(group.rate)
        share = rate / (100 + rate) if group.inclusive else rate / 100
        members = [
            (item, result)
            for item, result in zip(lines, totals.lines, strict=True)
            if (item.tax_category, item.tax_rate, item.tax_inclusive) == (group.category, group.rate, group.inclusive)
        ]
        gross = sum(result.amount - result.discount_amount for _, result in members)
        assert group.tax_amount == round_fraction(gross * share)
        for _, result in members:
            assert abs(result.tax_amount - (result.amount - result.discount_amount) * share) < 1
