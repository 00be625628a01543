"""Money as integer minor units plus an ISO 4217 currency.

This is a leaf module: any app may import it. Floats never touch money; Decimal is
only used for rates and fractions, and turned back into minor units by
``round_minor`` -- the one rounding function of Tarif (see docs/billing.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import lru_cache

from babel.core import Locale, UnknownLocaleError
from babel.numbers import get_currency_precision, get_decimal_symbol, get_group_symbol, list_currencies

from config.errors import DomainError, DomainValidationError
from config.errors import translate as _


class CurrencyError(DomainError, ValueError):
    """An unknown or malformed ISO 4217 currency code."""

    code = "invalid_currency"
    http_status = 400


class CurrencyMismatch(DomainError, ValueError):
    """Arithmetic between two different currencies."""

    code = "currency_mismatch"


class AmountError(DomainValidationError):
    """A typed amount that is not one: not a number, more decimals than the currency has,
    below or above what the caller accepts. A ValidationError too, so forms show it."""

    code = "invalid_amount"
    http_status = 400


@lru_cache(maxsize=1)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def validate_currency(code: str) -> str:
    """Return the upper-cased ISO 4217 code, or raise CurrencyError."""
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha():
        raise CurrencyError(_("'%(code)s' is not an ISO 4217 currency code.") % {"code": code})
    upper = code.upper()
    if upper not in _known_currencies():
        raise CurrencyError(_("'%(code)s' is not a known ISO 4217 currency.") % {"code": code})
    return upper


def currency_exponent(currency: str) -> int:
    """Number of minor-unit digits: 2 for EUR, 0 for JPY, 3 for KWD."""
    return get_currency_precision(validate_currency(currency))


# round_fraction truncates to this many decimals before the one real rounding.
_FRACTION_GUARD_DIGITS = 6


def round_minor(value: Decimal) -> int:
    """Round a Decimal amount already expressed in minor units to an integer.

    Half away from zero: Decimal's ROUND_HALF_UP rounds 2.5 -> 3 and -2.5 -> -3,
    so a credit and the matching charge round to the same magnitude.
    """
    if not isinstance(value, Decimal):
        raise TypeError("round_minor takes a Decimal; floats never touch money")
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def round_fraction(value: Fraction | int) -> int:
    """Round an exact rational amount of minor units, half away from zero.

    Proration (``2900 x 1/3``) and inclusive tax (``1200 x 20/120``) give fractions
    with no exact Decimal form. The fraction is truncated toward zero to a few
    decimal digits and handed to ``money.round_minor``. Truncation cannot change the
    result: for any integer n, ``|x| >= n + 1/2`` exactly when the truncated value is,
    because ``n + 1/2`` itself has one decimal digit. So this is one exact rounding.
    """
    if isinstance(value, bool) or not isinstance(value, Fraction | int):
        raise TypeError(f"round_fraction takes a Fraction or an int, not {type(value).__name__}")
    value = Fraction(value)
    scaled = abs(value.numerator) * 10**_FRACTION_GUARD_DIGITS // value.denominator
    sign = "-" if value < 0 else ""
    return round_minor(Decimal(f"{sign}{scaled}E-{_FRACTION_GUARD_DIGITS}"))


# Characters that only ever group digits: spaces (plain, no-break, narrow no-break as
# French writes "1 234,56") and apostrophes (Swiss "1'234.56", "1’234.56").
_GROUPING = re.compile(r"[\s\u00a0\u202f'\u2019]")
# Far above any bound (billing.limits.MAX_TOTAL is 10^12 minor units) and far below the
# sizes that make Decimal arithmetic slow.
_MAX_MAJOR_DIGITS = 30
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def _locale_symbols(locale: Locale | str | None) -> tuple[str, str] | None:
    """(decimal symbol, group symbol) of a locale, or None when no locale is given."""
    if locale is None:
        return None
    try:
        parsed = locale if isinstance(locale, Locale) else Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return None
    return get_decimal_symbol(parsed), get_group_symbol(parsed)


def parse_major(text: str, *, locale: Locale | str | None = None) -> Decimal:
    """Read an amount typed in major units ("1 234,56", "1,234.56", "1.234,56", "12.5").

    - spaces and apostrophes group digits; a leading + or - (or U+2212) gives the sign;
    - when both "," and "." appear, the last one is the decimal separator;
    - one kind appearing several times groups digits ("1,234,567");
    - a single "," or "." is the decimal separator, except when a `locale` is given
      whose group symbol it is and exactly three digits follow ("1,234" in English,
      "1.234" in German are 1234; in French both are 1.234).
    Raises AmountError for anything else (no exponent, no currency sign, no float).
    """
    raw = text.strip() if isinstance(text, str) else ""
    cleaned = _GROUPING.sub("", raw).replace("\u2212", "-")
    sign = ""
    if cleaned[:1] in ("+", "-"):
        sign, cleaned = ("-" if cleaned[0] == "-" else ""), cleaned[1:]
    commas, dots = cleaned.count(","), cleaned.count(".")
    if commas and dots:
        decimal, group = (",", ".") if cleaned.rfind(",") > cleaned.rfind(".") else (".", ",")
        head, _sep, tail = cleaned.rpartition(decimal)
        if group in tail:
            raise AmountError(_("'%(value)s' is not an amount.") % {"value": raw}, code="not_an_amount")
        cleaned = head.replace(group, "") + "." + tail
    elif commas > 1 or dots > 1:
        cleaned = cleaned.replace(",", "").replace(".", "")
    elif commas or dots:
        separator = "," if commas else "."
        symbols = _locale_symbols(locale)
        head, _sep, tail = cleaned.partition(separator)
        if symbols and separator == symbols[1] != symbols[0] and len(tail) == 3:
            cleaned = head + tail
        else:
            cleaned = head + "." + tail
    if not _PLAIN_NUMBER.fullmatch(cleaned):
        raise AmountError(_("'%(value)s' is not an amount.") % {"value": raw}, code="not_an_amount")
    return Decimal(sign + cleaned)


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money.amount is an integer number of minor units")
        object.__setattr__(self, "currency", validate_currency(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def from_major(
        cls,
        value: str | Decimal | int,
        currency: str,
        *,
        locale: Locale | str | None = None,
        minimum: int | None = 0,
        maximum: int | None = None,
    ) -> Money:
        """The one way a typed amount becomes minor units: "12,50" EUR -> Money(1250, "EUR").

        `value` is text as people type it (read by `parse_major`, with `locale` for a
        lone separator), or a Decimal / int already parsed (a form's DecimalField, an
        xs:decimal). The currency's exponent scales it (2 for EUR, 0 for JPY, 3 for KWD);
        more decimals than that is refused, never rounded. `minimum` / `maximum` bound
        the result in minor units (None: unbounded; the default refuses negatives), so
        callers pass their limits (billing.limits) and get one clear AmountError.
        """
        currency = validate_currency(currency)
        if isinstance(value, str):
            number = parse_major(value, locale=locale)
            shown = value.strip()
        elif isinstance(value, Decimal | int) and not isinstance(value, bool):
            number = Decimal(value)
            shown = str(value)
        else:
            raise TypeError(f"Money.from_major takes text, a Decimal or an int, not {type(value).__name__}")
        if not number.is_finite():
            raise AmountError(_("'%(value)s' is not an amount.") % {"value": shown}, code="not_an_amount")
        if number.adjusted() > _MAX_MAJOR_DIGITS:
            raise AmountError(_("'%(value)s' is too large an amount.") % {"value": shown}, code="out_of_bounds")
        exponent = currency_exponent(currency)
        # Exact arithmetic: Decimal's context would round 1E-999999999 to 0 without a word.
        tiny = number != 0 and number.adjusted() < -exponent
        minor = Fraction(0) if tiny else Fraction(number) * 10**exponent
        if tiny or minor.denominator != 1:
            raise AmountError(
                _("'%(value)s' has more decimals than %(currency)s allows (at most %(digits)d).")
                % {"value": shown, "currency": currency, "digits": exponent},
                code="too_many_decimals",
            )
        amount = minor.numerator
        if minimum is not None and amount < minimum:
            if minimum == 0:
                message = _("The amount cannot be negative.")
            elif minimum == 1:
                message = _("The amount must be more than zero.")
            else:
                message = _("The amount must be at least %(minimum)s.") % {"minimum": cls(minimum, currency)}
            raise AmountError(message, code="out_of_bounds")
        if maximum is not None and amount > maximum:
            raise AmountError(
                _("The amount must be at most %(maximum)s.") % {"maximum": cls(maximum, currency)},
                code="out_of_bounds",
            )
        return cls(amount, currency)

    def _check(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"{self.currency} vs {other.currency}"
            )  # untranslated: programmer error (arithmetic across currencies)

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.amount <= other.amount

    def __bool__(self) -> bool:
        return self.amount != 0

    def times(self, factor: Decimal | int) -> Money:
        """Multiply by a quantity or a rate, rounding once with round_minor."""
        if isinstance(factor, int) and not isinstance(factor, bool):
            return Money(self.amount * factor, self.currency)
        if not isinstance(factor, Decimal):
            raise TypeError("Money.times takes an int or a Decimal")
        return Money(round_minor(Decimal(self.amount) * factor), self.currency)

    @property
    def decimal(self) -> Decimal:
        """The amount in major units, for display and e-invoice XML only."""
        return Decimal(self.amount).scaleb(-currency_exponent(self.currency))

    def __str__(self) -> str:
        return f"{self.decimal} {self.currency}"
