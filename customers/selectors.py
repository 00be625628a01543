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


def customer_siren(*, customer: Customer) -> str:
    """The customer's SIREN: the one typed in, else the one a French VAT number carries ("" if none).

    A French VAT number is FR + a two-character key + the nine-digit SIREN, so a French business
    that gave only its VAT number still has a SIREN for e-invoicing (issue 18).
    """
    if customer.siren:
        return str(customer.siren)
    tax_id = (customer.tax_id or "").replace(" ", "").upper()
    if tax_id.startswith("FR") and len(tax_id) == 13 and tax_id[4:].isdigit():
        return tax_id[4:]
    return ""
