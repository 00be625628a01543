"""Reads of the quotes: the signed public link and the lists the console and API show."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.db.models import QuerySet
from django.urls import reverse

from billing.quotes.models import Quote
from config.modes import scope_to_mode

_SALT = "tarif.quotes.accept"


def quote_public_token(quote: Quote) -> str:
    """The acceptance link's token: the quote's random token bound to its brand and mode, signed.

    A link is only usable for the quote, brand and mode it was made for; a guessed, edited or
    re-targeted token finds nothing (404)."""
    value = f"{quote.public_token}.{quote.brand_id}.{'live' if quote.customer.livemode else 'test'}"
    return signing.Signer(salt=_SALT).sign(value)


def quote_public_url(quote: Quote) -> str:
    path = reverse("quotes:accept", args=[quote_public_token(quote)])
    return settings.TARIF_BASE_URL.rstrip("/") + path


def quote_for_public_token(*, token: str) -> Quote | None:
    """The issued quote a public token names, or None (bad signature, other brand or mode, a draft)."""
    try:
        value = signing.Signer(salt=_SALT).unsign(token)
    except signing.BadSignature:
        return None
    public_token, _, rest = value.partition(".")
    brand_id, _, mode = rest.partition(".")
    if not brand_id.isdigit() or mode not in ("live", "test"):
        return None
    return (
        Quote.objects.select_related("customer", "brand", "coupon", "subscription", "invoice")
        .exclude(status=Quote.Status.DRAFT)
        .filter(public_token=public_token, brand_id=int(brand_id), customer__livemode=(mode == "live"))
        .first()
    )


def quote_list(*, status: str | None = None, customer_id: int | None = None) -> QuerySet[Quote]:
    """Quotes of the current mode (the API key's or the console's switch), newest first."""
    quotes = scope_to_mode(Quote.objects.select_related("customer", "brand"))
    if status:
        quotes = quotes.filter(status=status)
    if customer_id is not None:
        quotes = quotes.filter(customer_id=customer_id)
    return quotes.order_by("-created_at", "-pk")
