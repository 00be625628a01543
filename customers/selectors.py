from __future__ import annotations

from typing import Any

from django.http import Http404

from customers.models import Customer


def customer_for_user(*, user: Any) -> Customer:
    """The one customer a portal user acts for; 404 for anyone else (staff included)."""
    link = getattr(user, "customer_link", None) if user.is_authenticated else None
    if link is None:
        raise Http404("No customer for this account")
    return link.customer
