"""The public acceptance form: the signer's name, the "I accept" box, and two robot traps."""

from __future__ import annotations

import time

from django import forms
from django.conf import settings
from django.core import signing
from django.utils.translation import gettext_lazy as _

_TRAP_SALT = "tarif.quotes.form-started"


def form_started_token() -> str:
    return signing.dumps(time.time(), salt=_TRAP_SALT)


class QuoteAcceptForm(forms.Form):
    signer_name = forms.CharField(
        label=_("Your full name"),
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
        error_messages={"required": _("Type your full name to sign the quote.")},
    )
    accept = forms.BooleanField(
        label=_("I have read this quote and its terms, and I accept them."),
        error_messages={"required": _("Tick the box to accept the quote.")},
    )
    # Honeypot: hidden from people (and from assistive technology), filled in by robots.
    website = forms.CharField(required=False, widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}))
    # Time trap: when the page was served (signed); a form sent back at once is a robot's.
    started = forms.CharField(widget=forms.HiddenInput)

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("website"):
            raise forms.ValidationError(_("The form could not be sent. Reload the page and try again."), code="trap")
        try:
            started = float(signing.loads(self.data.get("started", ""), salt=_TRAP_SALT, max_age=24 * 3600))
        except (signing.BadSignature, TypeError, ValueError):
            raise forms.ValidationError(_("This page is too old. Reload it and try again."), code="stale") from None
        if time.time() - started < settings.TARIF_QUOTE_MIN_FILL_SECONDS:
            raise forms.ValidationError(
                _("That was quick! Check the quote, then send the form again."), code="too_fast"
            )
        return cleaned
