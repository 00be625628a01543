from __future__ import annotations

from typing import Any

from django import template
from django.utils import translation

from invoices.rendering.formatting import long_date, money

register = template.Library()


def _language() -> str:
    return (translation.get_language() or "fr")[:2]


@register.filter(name="money")
def money_filter(amount: int | None, currency: str) -> str:
    """Minor units as the current language writes them: 3480|money:"EUR" -> 34,80 €."""
    if amount is None:
        return ""
    return money(int(amount), currency, _language())


@register.filter(name="longdate")
def long_date_filter(value: Any) -> str:
    if value is None:
        return ""
    return long_date(value.date() if hasattr(value, "date") else value, _language())
