"""Functional-currency amounts (issue 19 item 7): a document amount at the rate of the day.

Rates are ECB-style (`ExchangeRate`: one unit of `base` buys `rate` units of `currency`);
the import command (accexport) fills the table. The rate used is the latest one on or
before the day, at most `MAX_RATE_AGE_DAYS` old (weekends and holidays have no ECB rate).
Cross rates go through the base: amount / rate(currency) * rate(functional).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from django.conf import settings
from django.utils.translation import gettext as _

from config.money import currency_exponent, round_fraction
from invoices.ledger.errors import MissingExchangeRate
from invoices.ledger.models import ExchangeRate

MAX_RATE_AGE_DAYS = 7


def _rate(*, base: str, currency: str, on: date) -> Decimal:
    if currency == base:
        return Decimal(1)
    row = (
        ExchangeRate.objects.filter(
            base=base, currency=currency, date__lte=on, date__gte=on - timedelta(days=MAX_RATE_AGE_DAYS)
        )
        .order_by("-date")
        .values_list("rate", flat=True)
        .first()
    )
    if row is None:
        raise MissingExchangeRate(
            _("No exchange rate %(base)s/%(currency)s is known on or before %(day)s; import rates first.")
            % {"base": base, "currency": currency, "day": on.isoformat()}
        )
    return row


def conversion_rate(*, currency: str, functional_currency: str, on: date) -> Decimal:
    """Units of `functional_currency` for one unit of `currency` on `on` (major units)."""
    if currency == functional_currency:
        return Decimal(1)
    base = "EUR"
    from_base = _rate(base=base, currency=currency, on=on)
    to_base = _rate(base=base, currency=functional_currency, on=on)
    return (to_base / from_base).quantize(Decimal("1E-10"))


def functional_amount(
    *, amount: int, currency: str, on: date, functional_currency: str | None = None
) -> tuple[int, Decimal]:
    """`amount` (minor units of `currency`) in the functional currency's minor units, and the rate.

    Raises MissingExchangeRate when no rate is known for the day.
    """
    functional = functional_currency or settings.TARIF_LEDGER_FUNCTIONAL_CURRENCY
    if currency == functional:
        return amount, Decimal(1)
    rate = conversion_rate(currency=currency, functional_currency=functional, on=on)
    return functional_amount_at(amount, rate, currency, functional), rate


def functional_amount_at(amount: int, rate: Decimal, currency: str, functional_currency: str) -> int:
    """`amount` converted at a known `rate` (minor units to minor units, one rounding)."""
    if currency == functional_currency or amount == 0:
        return amount
    scale = Fraction(10) ** (currency_exponent(functional_currency) - currency_exponent(currency))
    return round_fraction(Fraction(amount) * Fraction(rate) * scale)
