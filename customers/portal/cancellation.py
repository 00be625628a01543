"""The form shown before a customer confirms a cancellation.

One function, so the feedback app's cancellation survey can take its place: whatever
`cancellation_form` returns must be a bound-able Django form with a `reason_text()`
method giving the short reason stored on the subscription.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _


class CancellationReasonForm(forms.Form):
    REASONS = (
        ("too_expensive", _("It is too expensive")),
        ("missing_features", _("Features I need are missing")),
        ("switched_service", _("I am switching to another service")),
        ("unused", _("I do not use it enough")),
        ("temporary", _("I only needed it for a while")),
        ("other", _("Another reason")),
    )

    reason = forms.ChoiceField(label=_("Why are you canceling?"), choices=REASONS, widget=forms.RadioSelect)
    comment = forms.CharField(
        label=_("Anything you would like to tell us?"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def reason_text(self) -> str:
        text = self.cleaned_data["reason"]
        comment = self.cleaned_data.get("comment", "").strip()
        return f"{text}: {comment}" if comment else text


def cancellation_form(customer: Any, data: Any = None) -> forms.Form:
    """The form asked before canceling (a plain reason form until the survey plugs in here)."""
    return CancellationReasonForm(data)
