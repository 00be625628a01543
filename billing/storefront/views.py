"""Public pages: a pricing table (page and embeddable frame), its script, and payment links.

Each page is branded by the table's or link's brand and carries its mode: a test-mode table
shows a banner and starts test-mode checkout sessions. The buttons POST: on the table's own
page and on a link's page with Django's CSRF token; inside the embed (a third-party site's
iframe, where the browser withholds our SameSite=Lax CSRF cookie) with a signed, expiring
form token bound to the table instead. Every POST is rate limited per IP and carries a
honeypot field that people never fill.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from billing.checkout.models import CheckoutSession
from billing.checkout.selectors import checkout_session_get, checkout_session_url
from billing.storefront.errors import StorefrontError, StorefrontUnavailable
from billing.storefront.models import PaymentLink, PricingTable
from billing.storefront.selectors import (
    payment_link_by_public_id,
    payment_link_items,
    price_display,
    pricing_table_by_public_id,
    pricing_table_cards,
    pricing_table_entries,
    pricing_table_intervals,
)
from billing.storefront.services import payment_link_checkout_start, pricing_table_checkout_start
from config.audit.context import client_ip
from config.errors import DomainError
from invoices.models import Brand
from invoices.rendering.logos import LOGO_MAX_BYTES, logo_media_type

HONEYPOT_FIELD = "website"
EMBED_TOKEN_SALT = "storefront.pricing_table.embed"
EMBED_TOKEN_MAX_AGE = 24 * 3600
NONE = "'none'"
SELF = "'self'"


def _rate(group: str, request: HttpRequest) -> str:
    return settings.TARIF_RATELIMIT_STOREFRONT


def _client(group: str, request: HttpRequest) -> str:
    # The address the login lockout and the audit log use: behind our proxies, the real client's.
    return client_ip(request) or ""


def _contrast_text(colour: str) -> str:
    """White or near-black text, whichever reads better (WCAG contrast) on the brand's colour."""

    def channel(value: int) -> float:
        srgb = value / 255
        return srgb / 12.92 if srgb <= 0.03928 else ((srgb + 0.055) / 1.055) ** 2.4

    try:
        red, green, blue = (int(colour[index : index + 2], 16) for index in (1, 3, 5))
    except (TypeError, ValueError):
        return "#ffffff"
    luminance = 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)
    on_white = 1.05 / (luminance + 0.05)
    return "#ffffff" if on_white >= 4.5 else "#1d2433"


def _page_context(obj: PricingTable | PaymentLink) -> dict[str, Any]:
    brand = obj.brand
    return {
        "brand": brand,
        "brand_text_colour": _contrast_text(brand.primary_colour),
        "test_mode": not obj.livemode,
        "honeypot_field": HONEYPOT_FIELD,
    }


def _problem_page(request: HttpRequest, *, obj: Any, title: str, message: str, status: int) -> HttpResponse:
    context = {"title": title, "message": message}
    if obj is not None:
        context.update(_page_context(obj))
    return render(request, "storefront/problem.html", context, status=status)


def _too_many(request: HttpRequest, obj: Any) -> HttpResponse:
    response = _problem_page(
        request,
        obj=obj,
        title=_("Too many attempts"),
        message=_("Too many attempts from your connection. Wait a minute and try again."),
        status=429,
    )
    response["Retry-After"] = "60"
    return response


def _refused(request: HttpRequest, obj: Any, error: DomainError) -> HttpResponse:
    if isinstance(error, StorefrontUnavailable):
        return _unavailable(request, obj)
    if isinstance(error, StorefrontError) and error.problem_code in ("price_not_in_table", "price_not_found"):
        raise Http404
    status = error.http_status if 400 <= error.http_status < 500 else 409
    return _problem_page(
        request, obj=obj, title=_("This purchase cannot start"), message=error.message_text(), status=status
    )


def _unavailable(request: HttpRequest, obj: Any) -> HttpResponse:
    return _problem_page(
        request,
        obj=obj,
        title=_("No longer available"),
        message=_("This offer is no longer available. Contact the seller for a new link."),
        status=410,
    )


def _honeypot_filled(request: HttpRequest) -> bool:
    return bool(request.POST.get(HONEYPOT_FIELD, "").strip())


def _redirect_to_checkout(session: CheckoutSession) -> HttpResponse:
    return HttpResponseRedirect(checkout_session_url(session))


def _absolute(path: str) -> str:
    # From the configured base URL, never the request's Host header (which a caller chooses).
    return settings.TARIF_BASE_URL.rstrip("/") + path


def _thanks_url(request: HttpRequest) -> str:
    return _absolute(reverse("storefront:thanks")) + "?session_id={CHECKOUT_SESSION_ID}"


def _table_or_404(public_id: str) -> PricingTable:
    table = pricing_table_by_public_id(public_id=public_id)
    if table is None:
        raise Http404
    return table


def _table_context(request: HttpRequest, table: PricingTable, *, embed: bool) -> dict[str, Any]:
    entries = list(pricing_table_entries(table=table))
    intervals = pricing_table_intervals(entries=entries)
    asked = request.GET.get("interval")
    selected = asked if asked in intervals else (intervals[0] if intervals else "month")
    panels = [
        {
            "interval": interval,
            "label": _("Monthly") if interval == "month" else _("Yearly"),
            "cards": pricing_table_cards(table=table, entries=entries, interval=interval),
        }
        for interval in intervals
    ]
    context = _page_context(table)
    context.update(
        {
            "table": table,
            "panels": panels,
            "selected_interval": selected,
            "embed": embed,
            "start_url": reverse(
                "storefront:pricing_embed_start" if embed else "storefront:pricing_start", args=[table.public_id]
            ),
            "form_token": signing.dumps(table.public_id, salt=EMBED_TOKEN_SALT) if embed else "",
        }
    )
    return context


@require_GET
def pricing_table_page(request: HttpRequest, public_id: str) -> HttpResponse:
    table = _table_or_404(public_id)
    return render(request, "storefront/pricing_table.html", _table_context(request, table, embed=False))


@require_GET
@xframe_options_exempt
def pricing_table_embed(request: HttpRequest, public_id: str) -> HttpResponse:
    """The table for an iframe: the only storefront page other sites may frame (their origins only)."""
    table = _table_or_404(public_id)
    language = (request.GET.get("lang") or "")[:2].lower()
    if language not in dict(settings.LANGUAGES):
        language = translation.get_language()
    with translation.override(language):  # the host page's language (embed.js passes it)
        response = render(request, "storefront/pricing_table.html", _table_context(request, table, embed=True))
    origins = [*settings.TARIF_PRICING_EMBED_ORIGINS, *table.embed_origin_list()]
    response._csp_replace = {"frame-ancestors": [SELF, *origins]}  # type: ignore[attr-defined]
    return response


@require_GET
@cache_control(public=True, max_age=300)
def pricing_table_embed_script(request: HttpRequest, public_id: str) -> HttpResponse:
    """The embed script: the same for every table (it reads the ids from the page); no eval, no inline code."""
    _table_or_404(public_id)
    script = render_to_string("storefront/embed.js", {})
    response = HttpResponse(script, content_type="text/javascript; charset=utf-8")
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _start_table(request: HttpRequest, table: PricingTable) -> HttpResponse:
    if getattr(request, "limited", False):
        return _too_many(request, table)
    if _honeypot_filled(request):
        return _problem_page(
            request, obj=table, title=_("Please try again"), message=_("The form could not be sent."), status=400
        )
    try:
        price_id = int(request.POST.get("price", ""))
    except ValueError:
        raise Http404 from None
    cancel_url = table.cancel_url or _absolute(reverse("storefront:pricing", args=[table.public_id]))
    try:
        session = pricing_table_checkout_start(
            table=table,
            price_id=price_id,
            success_url=table.success_url or _thanks_url(request),
            cancel_url=cancel_url,
        )
    except DomainError as error:
        return _refused(request, table, error)
    return _redirect_to_checkout(session)


@require_POST
@csrf_protect
@ratelimit(key=_client, rate=_rate, method="POST", block=False)
def pricing_table_start(request: HttpRequest, public_id: str) -> HttpResponse:
    return _start_table(request, _table_or_404(public_id))


@require_POST
@csrf_exempt  # a third-party iframe has no CSRF cookie: the signed form token below stands in for it
@ratelimit(key=_client, rate=_rate, method="POST", block=False)
def pricing_table_embed_start(request: HttpRequest, public_id: str) -> HttpResponse:
    table = _table_or_404(public_id)
    try:
        signed_for = signing.loads(
            request.POST.get("form_token", ""), salt=EMBED_TOKEN_SALT, max_age=EMBED_TOKEN_MAX_AGE
        )
    except signing.BadSignature:
        signed_for = None
    if signed_for != table.public_id:
        return _problem_page(
            request,
            obj=table,
            title=_("Please try again"),
            message=_("This page is out of date. Reload it and choose your plan again."),
            status=403,
        )
    return _start_table(request, table)


def _link_context(link: PaymentLink) -> dict[str, Any]:
    items = list(payment_link_items(link=link))
    context = _page_context(link)
    context.update(
        {
            "link": link,
            "lines": [{"item": item, "display": price_display(item.price)} for item in items],
        }
    )
    return context


@require_http_methods(["GET", "POST"])
@csrf_protect
@ratelimit(key=_client, rate=_rate, method="POST", block=False)
def payment_link_page(request: HttpRequest, public_id: str) -> HttpResponse:
    link = payment_link_by_public_id(public_id=public_id)
    if link is None:
        raise Http404
    if not link.active:
        return _unavailable(request, link)
    if request.method == "GET":
        return render(request, "storefront/payment_link.html", _link_context(link))
    if getattr(request, "limited", False):
        return _too_many(request, link)
    if _honeypot_filled(request):
        return _problem_page(
            request, obj=link, title=_("Please try again"), message=_("The form could not be sent."), status=400
        )
    quantities: dict[int, int] = {}
    for item in payment_link_items(link=link):
        if not item.adjustable:
            continue
        try:
            quantities[item.pk] = int(request.POST.get(f"quantity-{item.pk}", item.quantity))
        except ValueError:
            quantities[item.pk] = 0  # refused by the service with its bounds
    try:
        session = payment_link_checkout_start(
            link=link,
            quantities=quantities,
            success_url=link.after_completion_url or _thanks_url(request),
            cancel_url=_absolute(reverse("storefront:buy", args=[link.public_id])),
        )
    except StorefrontError as error:
        if error.problem_code == "quantity_bounds":
            context = _link_context(link)
            context["quantity_error"] = error.message_text()
            return render(request, "storefront/payment_link.html", context, status=400)
        return _refused(request, link, error)
    except DomainError as error:
        return _refused(request, link, error)
    return _redirect_to_checkout(session)


@require_GET
@cache_control(public=True, max_age=3600)
def brand_logo(request: HttpRequest, slug: str) -> HttpResponse:
    """A brand's logo for its public pages: type from its bytes, never the uploaded name."""
    brand = Brand.objects.filter(slug=slug).first()
    if brand is None or not brand.logo:
        raise Http404
    with brand.logo.open("rb") as file:
        data = file.read(LOGO_MAX_BYTES + 1)
    try:
        media_type = logo_media_type(data)
    except ValidationError as error:
        raise Http404 from error
    response = HttpResponse(data, content_type=media_type)
    if media_type == "image/svg+xml":  # shown through <img> only: no script, no navigation into it
        response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return response


@require_GET
def thanks(request: HttpRequest) -> HttpResponse:
    """The default page after a checkout when the table or link names no URL of its own: in the
    session's brand, and it says "complete" only for a session that is."""
    session = checkout_session_get(public_id=request.GET.get("session_id", ""))
    context: dict[str, Any] = {"complete": session is not None and session.status == CheckoutSession.Status.COMPLETE}
    if session is not None:
        context.update(
            {
                "brand": session.brand,
                "brand_text_colour": _contrast_text(session.brand.primary_colour),
                "test_mode": not session.livemode,
            }
        )
    return render(request, "storefront/thanks.html", context)
