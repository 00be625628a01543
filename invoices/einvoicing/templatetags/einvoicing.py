"""`{% einvoice_timeline document %}`: a transmitted document's lifecycle statuses (console and portal)."""

from __future__ import annotations

from django import template
from django.db.models import Model

from config.types import JsonDict
from invoices.einvoicing.models import Transmission
from invoices.einvoicing.selectors import transmission_timeline
from invoices.models import CreditNote, Invoice

register = template.Library()


def einvoice_timeline_context(document: Model | None, audience: str = "console") -> JsonDict:
    transmission: Transmission | None = None
    if isinstance(document, Invoice):
        transmission = Transmission.objects.filter(invoice=document).first()
    elif isinstance(document, CreditNote):
        transmission = Transmission.objects.filter(credit_note=document).first()
    return {
        "transmission": transmission,
        "statuses": list(transmission_timeline(transmission=transmission)) if transmission else [],
        "audience": audience,
    }


@register.inclusion_tag("einvoicing/timeline.html")
def einvoice_timeline(document: Model | None, audience: str = "console") -> JsonDict:
    return einvoice_timeline_context(document, audience)
