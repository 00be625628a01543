"""One constructor for typed amounts: Money.from_major (config/money.py).

The console's forms (refunds, manual payments, one-off items, credit notes) and the bank
statement import all read amounts typed in major units through it.
"""

from decimal import Decimal

import pytest
from babel.numbers import format_decimal
from hypothesis import given
from hypothesis import strategies as st

from config.money import AmountError, CurrencyError, Money, parse_major

CURRENCIES = {"JPY": 0, "EUR": 2, "KWD": 3}
LOCALES = ["fr", "en", "de", "de_CH", None]


def written(money: Money, locale: str | None) -> str:
    """How people (and babel) write the amount in `locale`; plain digits without one."""
    if locale is None:
        return format(money.decimal, "f")
    return format_decimal(money.decimal, locale=locale, decimal_quantization=False)


@given(
    amount=st.integers(min_value=-(10**12), max_value=10**12),
    currency=st.sampled_from(sorted(CURRENCIES)),
    locale=st.sampled_from(LOCALES),
)
def test_an_amount_written_in_any_locale_reads_back_exactly(amount, currency, locale):
    money = Money(amount, currency)
    assert Money.from_major(written(money, locale), currency, locale=locale, minimum=None) == money


@pytest.mark.parametrize(
    ("text", "currency", "locale", "minor"),
    [
        ("150", "EUR", None, 15000),
        ("150.5", "EUR", None, 15050),
        ("150,5", "EUR", None, 15050),
        ("1 234,56", "EUR", None, 123456),
        ("1\u202f234,56", "EUR", "fr", 123456),
        ("1.234,56", "EUR", None, 123456),
        ("1,234.56", "EUR", None, 123456),
        ("1’234.56", "EUR", None, 123456),
        ("1,234,567", "JPY", None, 1234567),
        ("1,234", "JPY", "en", 1234),
        ("1.234", "KWD", "en", 1234),
        ("1.234", "KWD", "de", 1234000),
        ("1,234", "KWD", "fr", 1234),
        ("+12,345", "KWD", None, 12345),
        ("\u221212,50", "EUR", None, -1250),
        ("12.500", "EUR", None, 1250),  # trailing zeros are no extra precision
    ],
)
def test_typed_amounts(text, currency, locale, minor):
    assert Money.from_major(text, currency, locale=locale, minimum=None) == Money(minor, currency)


@pytest.mark.parametrize(
    ("value", "currency", "code"),
    [
        ("12.345", "EUR", "too_many_decimals"),
        ("1,234", "EUR", "too_many_decimals"),  # no locale / French: 1.234 €, never silently 1 234 €
        ("0.5", "JPY", "too_many_decimals"),
        (Decimal("1E-999999999"), "EUR", "too_many_decimals"),  # Decimal's context would round it to 0
        ("1E3", "EUR", "not_an_amount"),
        ("12 €", "EUR", "not_an_amount"),
        ("douze", "EUR", "not_an_amount"),
        ("", "EUR", "not_an_amount"),
        ("1.234,5.6", "EUR", "not_an_amount"),
        (Decimal("NaN"), "EUR", "not_an_amount"),
        (Decimal("Infinity"), "EUR", "not_an_amount"),
        (Decimal("1E+999999"), "EUR", "out_of_bounds"),
        ("-1", "EUR", "out_of_bounds"),  # negatives only where the caller allows them
    ],
)
def test_what_is_not_an_amount_is_refused_with_a_clear_error(value, currency, code):
    with pytest.raises(AmountError) as refused:
        Money.from_major(value, currency)
    assert refused.value.problem_code == code
    assert refused.value.http_status == 400
    assert refused.value.message_text()


def test_bounds_are_the_callers():
    assert Money.from_major("999999.99", "EUR", maximum=99_999_999).amount == 99_999_999
    with pytest.raises(AmountError, match="at most 999999.99 EUR"):
        Money.from_major("1000000", "EUR", maximum=99_999_999)
    with pytest.raises(AmountError, match="more than zero"):
        Money.from_major("0", "EUR", minimum=1)
    assert Money.from_major("-999999.99", "EUR", minimum=-99_999_999).amount == -99_999_999


def test_floats_and_unknown_currencies_never_pass():
    with pytest.raises(TypeError):
        Money.from_major(12.5, "EUR")
    with pytest.raises(CurrencyError):
        Money.from_major("12.50", "EUX")


def test_negative_control_the_locale_is_what_reads_an_english_thousands_comma():
    # The round trip above needs the locale: without it "1,234" (English for 1 234) is a
    # decimal comma, so a reader that ignored the locale would fail the property.
    english = written(Money(123400, "EUR"), "en")
    assert english == "1,234"
    with pytest.raises(AmountError):
        Money.from_major(english, "EUR")
    assert parse_major(english, locale="en") == Decimal(1234)
