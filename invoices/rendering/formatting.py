"""Amounts, dates, quantities and rates formatted by locale with Babel."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, get_currency_precision

# "en" (not en_GB) so the dates match those of the frozen legal mentions (invoices.services.documents).
_LOCALES = {"fr": "fr_FR", "en": "en"}


def locale_of(language: str) -> str:
    return _LOCALES.get(language, "fr_FR")


@lru_cache(maxsize=64)
def exponent(currency: str) -> int:
    return get_currency_precision(currency)


def major(amount: int, currency: str) -> Decimal:
    """Minor units as a Decimal of the currency's major unit (1234 EUR cents -> 12.34)."""
    return Decimal(amount).scaleb(-exponent(currency))


def money(amount: int, currency: str, language: str) -> str:
    return format_currency(major(amount, currency), currency, locale=locale_of(language))


def long_date(value: date | str | None, language: str) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return format_date(value, format="long", locale=locale_of(language))


def short_date(value: date, language: str) -> str:
    return format_date(value, format="d MMM yyyy" if language == "en" else "dd/MM/yyyy", locale=locale_of(language))


def period(start: datetime | None, end: datetime | None, *, timezone: str, language: str) -> str:
    """A service period in the brand's time zone; the end is exclusive, shown as its last day."""
    if start is None or end is None:
        return ""
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone).date()
    last_moment = end.astimezone(zone)
    last = last_moment.date()
    if last > first and last_moment.time() == datetime.min.time():
        last = date.fromordinal(last.toordinal() - 1)
    return f"{short_date(first, language)} – {short_date(last, language)}"


def quantity(value: Decimal, language: str) -> str:
    return format_decimal(Decimal(value).normalize(), locale=locale_of(language))


def rate(value: Decimal | str, language: str) -> str:
    return format_decimal(Decimal(value).normalize(), locale=locale_of(language)) + " %"
