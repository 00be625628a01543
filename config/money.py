"""Money as integer minor units plus an ISO 4217 currency.

This is a leaf module: any app may import it. Floats never touch money; Decimal is
only used for rates and fractions, and turned back into minor units by
``round_minor`` -- the one rounding function of Tarif (see docs/billing.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import lru_cache

from babel.numbers import get_currency_precision, list_currencies

from config.errors import DomainError


class CurrencyError(DomainError, ValueError):
    """An unknown or malformed ISO 4217 currency code."""

    code = "invalid_currency"
    http_status = 400


class CurrencyMismatch(DomainError, ValueError):
    """Arithmetic between two different currencies."""

    code = "currency_mismatch"


@lru_cache(maxsize=1)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def validate_currency(code: str) -> str:
    """Return the upper-cased ISO 4217 code, or raise CurrencyError."""
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha():
        raise CurrencyError(f"'{code}' is not an ISO 4217 currency code.")
    upper = code.upper()
    if upper not in _known_currencies():
        raise CurrencyError(f"'{code}' is not a known ISO 4217 currency.")
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

    def _check(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}")

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
