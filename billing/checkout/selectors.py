"""Reads of checkout sessions: the hosted page's URL, lookups scoped to a mode, the page's preview."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse

from billing.checkout.models import CheckoutSession
from config.modes import scope_to_mode


def checkout_session_url(session: CheckoutSession) -> str:
    """Absolute URL of the hosted page (what the API returns as `url` and a payment link redirects to)."""
    path = reverse("checkout:session", kwargs={"public_id": session.public_id})
    return settings.TARIF_BASE_URL.rstrip("/") + path


def checkout_session_list(*, livemode: bool | None = None) -> QuerySet[CheckoutSession]:
    return scope_to_mode(
        CheckoutSession.objects.select_related("brand", "customer").prefetch_related("line_items__price__product"),
        livemode=livemode,
    )


def checkout_session_get(*, public_id: str, livemode: bool | None = None) -> CheckoutSession | None:
    """The session with this id in the mode (None: another mode's, or no such id: both look the same)."""
    if not isinstance(public_id, str) or not public_id.startswith("cs_") or len(public_id) > 64:
        return None
    return checkout_session_list(livemode=livemode).filter(public_id=public_id).first()
