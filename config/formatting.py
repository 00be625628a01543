"""Money as people read it: a leaf module that models, services and the console share.

Amounts are integer minor units in the database and in services (config/money.py); this module
writes them the way the reader's language does (babel): 123456 EUR is "1 234,56 €" in French and
"€1,234.56" in English. The console's toolkit (config/console.py) re-exports it.
"""

from __future__ import annotations

from babel.core import Locale, UnknownLocaleError
from babel.numbers import format_currency, format_decimal
from django.utils import translation

from config.money import CurrencyError, Money

__all__ = ["babel_locale", "format_count", "format_money"]


def babel_locale() -> Locale:
    try:
        return Locale.parse(translation.to_locale(translation.get_language() or "en"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def format_money(amount: int | None, currency: str | None) -> str:
    """Minor units as the reader's locale writes money: 123456 EUR -> "1 234,56 €" in French."""
    if amount is None or not currency:
        return "—"
    try:
        money = Money(int(amount), currency)
    except (CurrencyError, TypeError, ValueError):
        return f"{amount} {currency}"
    return format_currency(money.decimal, money.currency, locale=babel_locale())


def format_count(count: int) -> str:
    """A count as the reader's locale groups digits: 914055 -> "914 055" in French, "914,055" in
    English (the grouping space does not break a line)."""
    return format_decimal(int(count), locale=babel_locale())
