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
    from invoices.models import Brand  # deferred: templatetags load before the apps are ready

    return Brand.objects.filter(is_default=True).only("name", "primary_colour", "accent_colour").first()


@register.simple_tag(name="signup_open", takes_context=True)
def signup_open_tag(context: Any) -> bool:
    """Whether the sign-in page may offer a sign-up link: the account adapter decides."""
    from allauth.account.adapter import get_adapter  # deferred: allauth reads settings at import

    request = context.get("request")
    return request is not None and bool(get_adapter(request).is_open_for_signup(request))


def _luminance(colour: str) -> float:
    value = colour.lstrip("#")
    channels = [int(value[index : index + 2], 16) / 255 for index in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _valid(colour: Any) -> bool:
    text = str(colour or "")
    return len(text) == 7 and text.startswith("#") and all(c in "0123456789abcdefABCDEF" for c in text[1:])


@register.filter(name="on_colour")
def on_colour_filter(colour: Any) -> str:
    """Text colour readable on a brand colour (WCAG AA, 4.5:1): white, else the page's ink."""
    if not _valid(colour):
        return "#ffffff"
    return "#ffffff" if contrast_ratio(str(colour), "#ffffff") >= 4.5 else "#1d2433"


@register.filter(name="ink_colour")
def ink_colour_filter(colour: Any) -> str:
    """The brand colour for text and borders on white, darkened until it reads at 4.5:1."""
    if not _valid(colour):
        return "#2851a3"
    text = str(colour)
    red, green, blue = (int(text[index : index + 2], 16) for index in (1, 3, 5))
    for _step in range(20):
        candidate = f"#{red:02x}{green:02x}{blue:02x}"
        if contrast_ratio(candidate, "#ffffff") >= 4.5:
            return candidate
        red, green, blue = (int(channel * 0.85) for channel in (red, green, blue))
    return "#1d2433"
