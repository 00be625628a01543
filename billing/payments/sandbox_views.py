"""The sandbox's hosted checkout page: Stripe Checkout's part when the sandbox gateway is on.

It lives outside the portal (its own URL namespace, `/sandbox/checkout/<session>/`) and
is the only page where a card number is typed: the portal never shows a card field.
"""

from __future__ import annotations

from django import forms
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from billing.models import SandboxSetupSession
from billing.payments.gateway import GatewayError
from billing.payments.sandbox import setup_session_fill


class SandboxCardForm(forms.Form):
    number = forms.CharField(
        label=_("Card number"), max_length=23, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    exp_month = forms.IntegerField(label=_("Expiry month"), min_value=1, max_value=12)
    exp_year = forms.IntegerField(label=_("Expiry year"), min_value=2000, max_value=2100)
    cvc = forms.CharField(label=_("CVC"), min_length=3, max_length=4)


@never_cache
def checkout(request: HttpRequest, session_id: str) -> HttpResponse:
    session = SandboxSetupSession.objects.filter(session_id=session_id).first()
    if session is None:
        raise Http404("No such checkout session")
    if session.status != "open":
        return HttpResponseRedirect(session.return_url)
    form = SandboxCardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        card = {key: form.cleaned_data[key] for key in ("number", "exp_month", "exp_year", "cvc")}
        try:
            return HttpResponseRedirect(setup_session_fill(session_id=session_id, card=card))
        except GatewayError as error:
            form.add_error("number", str(error))
    return render(request, "sandbox/checkout.html", {"form": form, "session": session})
