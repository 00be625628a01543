"""`{% einvoice_timeline document %}`: a transmitted document's lifecycle statuses (console and portal)."""

from __future__ import annotations

from django import template
from django.db.models import Model

from config.types import JsonDict
from invoices.einvoicing.models import ATTENTION_CODES, LifecycleCode, LifecycleStatus, Transmission
from invoices.einvoicing.selectors import transmission_timeline
from invoices.models import CreditNote, Invoice

register = template.Library()

# How each status reads on the timeline: a tone (colour), an icon, always with the status's text,
# so colour is never the only signal (WCAG 1.4.1). Refused and rejected need finance's attention.
WARNING_CODES = frozenset({LifecycleCode.DISPUTED, LifecycleCode.SUSPENDED, LifecycleCode.PARTIALLY_APPROVED})
GOOD_CODES = frozenset(
    {LifecycleCode.APPROVED, LifecycleCode.COMPLETED, LifecycleCode.PAYMENT_TRANSMITTED, LifecycleCode.COLLECTED}
)
ICONS = {"bad": "✕", "warning": "!", "good": "✓", "neutral": "•"}


def timeline_item(status: LifecycleStatus) -> JsonDict:
    if status.code in ATTENTION_CODES:
        tone = "bad"
    elif status.code in WARNING_CODES:
        tone = "warning"
    elif status.code in GOOD_CODES:
        tone = "good"
    else:
        tone = "neutral"
    return {"status": status, "tone": tone, "icon": ICONS[tone], "attention": tone == "bad"}


def einvoice_timeline_context(document: Model | None, audience: str = "console") -> JsonDict:
    transmission: Transmission | None = None
    if isinstance(document, Invoice):
        transmission = Transmission.objects.filter(invoice=document).first()
    elif isinstance(document, CreditNote):
        transmission = Transmission.objects.filter(credit_note=document).first()
    return {
        "transmission": transmission,
        "statuses": [timeline_item(status) for status in transmission_timeline(transmission=transmission)]
        if transmission
        else [],
        "audience": audience,
    }


@register.inclusion_tag("einvoicing/timeline.html")
def einvoice_timeline(document: Model | None, audience: str = "console") -> JsonDict:
    return einvoice_timeline_context(document, audience)
