"""The public quote page: opened from the quote email, branded, in French or English.

GET shows the quote (items, discounts, taxes, totals, validity, terms, PDF link) and, while it
is open, the acceptance form; POST accepts it through `quote_accept` (one service, under the
quote's row lock). An unknown, edited or other brand's/mode's token is a 404; an expired,
withdrawn, replaced or already accepted quote shows why it cannot be accepted.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_ratelimit.decorators import ratelimit

from billing.quotes.errors import QuoteError, QuoteStateError
from billing.quotes.forms import QuoteAcceptForm, form_started_token
from billing.quotes.models import Quote
from billing.quotes.rendering import quote_document, quote_pdf, quote_pdf_filename
from billing.quotes.selectors import quote_for_public_token, quote_public_token
from billing.quotes.services import quote_accept, quote_is_expired
from config.audit.context import client_ip

LANGUAGES = ("fr", "en")


def _client_key(group: str, request: HttpRequest) -> str:
    return client_ip(request) or "unknown"


def _view_rate(group: str, request: HttpRequest) -> str:
    return settings.TARIF_RATELIMIT_QUOTE_VIEW


def _accept_rate(group: str, request: HttpRequest) -> str:
    return settings.TARIF_RATELIMIT_QUOTE_ACCEPT


def _quote_or_404(token: str) -> Quote:
    quote = quote_for_public_token(token=token)
    if quote is None:
        raise Http404("No such quote")
    return quote


def _language(request: HttpRequest, quote: Quote) -> str:
    requested = request.GET.get("lang")
    if requested in LANGUAGES:
        return requested
    language = (quote.snapshot or {}).get("language") or quote.customer.preferred_language
    return language if language in LANGUAGES else "fr"


def _closed_reason(quote: Quote) -> tuple[str, str] | None:
    """(code, message) when the quote cannot be accepted, in the active language."""
    if quote.status == Quote.Status.ACCEPTED:
        return "accepted", ""
    if quote.status == Quote.Status.CANCELED and quote.cancel_reason == Quote.CancelReason.SUPERSEDED:
        return "superseded", _(
            "This quote was replaced by a revised version: use the link of the latest quote you received."
        )
    if quote.status == Quote.Status.CANCELED:
        return "canceled", _("This quote was withdrawn and can no longer be accepted.")
    if quote_is_expired(quote=quote):
        return "expired", _("This quote has expired and can no longer be accepted. Contact us for a new one.")
    return None


def _respond(request: HttpRequest, context: dict[str, Any], *, status: int) -> HttpResponse:
    response = render(request, "quotes/accept.html", context, status=status)
    # The token is in the URL: keep the page out of search engines and caches.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "no-store"
    return response


def _context(request: HttpRequest, quote: Quote, language: str, **extra: Any) -> dict[str, Any]:
    document = quote_document(quote, language=language)
    brand = quote.brand
    token = quote_public_token(quote)
    return {
        "language": language,
        "other_language": "en" if language == "fr" else "fr",
        "quote": quote,
        "doc": document,
        "brand": brand,
        "primary": brand.primary_colour,
        "accent": brand.accent_colour,
        "token": token,
        "test_mode": not quote.customer.livemode,
        "accepted_at": quote.accepted_at,
        **extra,
    }


@never_cache
@ratelimit(group="quotes.view", key=_client_key, rate=_view_rate, method="GET", block=False)
@ratelimit(group="quotes.accept", key=_client_key, rate=_accept_rate, method="POST", block=False)
@require_http_methods(["GET", "POST"])
def quote_page(request: HttpRequest, token: str) -> HttpResponse:
    quote = _quote_or_404(token)
    language = _language(request, quote)
    with translation.override(language):
        if getattr(request, "limited", False):
            context = _context(request, quote, language, form=None, closed=None)
            context["limited"] = _("Too many attempts from your connection. Wait a minute, then try again.")
            return _respond(request, context, status=429)
        form = QuoteAcceptForm(
            request.POST if request.method == "POST" else None, initial={"started": form_started_token()}
        )
        status = 200
        if request.method == "POST" and _closed_reason(quote) is not None:
            closed = _closed_reason(quote)
            context = _context(request, quote, language, form=None, closed=closed)
            if closed[0] == "accepted":
                context["refusal"] = _("This quote has already been accepted.")
            return _respond(request, context, status=409)
        if request.method == "POST":
            status = 400
            if form.is_valid():
                try:
                    quote = quote_accept(
                        quote=quote,
                        signer_name=form.cleaned_data["signer_name"],
                        ip_address=client_ip(request),
                        user_agent=request.META.get("HTTP_USER_AGENT", ""),
                    )
                except QuoteStateError as error:
                    quote.refresh_from_db()
                    closed = _closed_reason(quote)
                    context = _context(request, quote, language, form=None, closed=closed, refusal=error.message_text())
                    return _respond(request, context, status=409)
                except QuoteError as error:
                    form.add_error("signer_name", error.message_text())
                else:
                    context = _context(request, quote, language, form=None, closed=("accepted", ""), just_accepted=True)
                    return _respond(request, context, status=200)
            # A fresh time trap for the corrected form.
            form.data = form.data.copy()
            form.data["started"] = form_started_token()
        closed = _closed_reason(quote)
        if closed is not None:
            status = 410 if closed[0] != "accepted" else 200
        context = _context(request, quote, language, form=None if closed else form, closed=closed)
        return _respond(request, context, status=status)


@never_cache
@require_GET
@ratelimit(group="quotes.view", key=_client_key, rate=_view_rate, method="GET", block=False)
def quote_pdf_download(request: HttpRequest, token: str) -> HttpResponse:
    quote = _quote_or_404(token)
    if getattr(request, "limited", False):
        return HttpResponse(status=429)
    response = HttpResponse(quote_pdf(quote, language=request.GET.get("lang")), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{quote_pdf_filename(quote)}"'
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "no-store"
    return response
