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


@register.filter(name="described")
def described_filter(field: Any) -> str:
    """A form field's widget tied to its help text and errors (aria-describedby), marked invalid
    when it has errors: what screen readers announce when the field gets focus."""
    ids = []
    if field.help_text:
        ids.append(f"{field.auto_id}_helptext")
    if field.errors:
        ids.append(f"{field.auto_id}_errors")
    attrs: dict[str, str] = {}
    if ids:
        attrs["aria-describedby"] = " ".join(ids)
    if field.errors:
        attrs["aria-invalid"] = "true"
    return field.as_widget(attrs=attrs)


@register.simple_tag(name="public_brand")
def public_brand_tag() -> Any:
    """The brand shown on pages before sign-in (sign-in, password reset): the default brand."""
    from invoices.models import Brand  # templatetags load early; the model is only needed here

    return Brand.objects.filter(is_default=True).only("name", "primary_colour", "accent_colour").first()


@register.simple_tag(name="signup_open", takes_context=True)
def signup_open_tag(context: Any) -> bool:
    """Whether the sign-in page may offer a sign-up link: the account adapter decides."""
    from allauth.account.adapter import get_adapter

    request = context.get("request")
    return request is not None and bool(get_adapter(request).is_open_for_signup(request))
