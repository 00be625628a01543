from __future__ import annotations

from typing import Any

from django.db import connection
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


def customer_countries_in_use(*, livemode: bool) -> list[str]:
    """The distinct countries of this mode's customers, sorted (the console's country filter).

    A plain DISTINCT reads every customer (0.3 s at 1,000,000). On PostgreSQL, a loose index
    scan on (livemode, country) instead: one index probe per country in use, whatever the
    number of customers (PostgreSQL has no skip scan of its own before version 18)."""
    if connection.vendor != "postgresql":
        codes = Customer.objects.filter(livemode=livemode).exclude(country="").order_by("country")
        return list(codes.values_list("country", flat=True).distinct())
    table = connection.ops.quote_name(Customer._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE codes(country) AS (
                (SELECT country FROM {table} WHERE livemode = %s AND country > '' ORDER BY country LIMIT 1)
                UNION ALL
                SELECT (SELECT next.country FROM {table} AS next
                        WHERE next.livemode = %s AND next.country > codes.country ORDER BY next.country LIMIT 1)
                FROM codes WHERE codes.country IS NOT NULL
            )
            SELECT country FROM codes WHERE country IS NOT NULL
            """,
            [livemode, livemode],
        )
        return [code for (code,) in cursor.fetchall()]
