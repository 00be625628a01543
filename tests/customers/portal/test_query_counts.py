"""Issue 20: the portal's pages make a fixed number of queries however many invoices and
payments the customer has (its history, what grows month after month; no query per row).

Not guarded: the number of live subscriptions. The overview previews each one's upcoming
invoice (~7 queries each) and the usage page reads each one's usage (2 each): a few per
customer, the billing services' own reads (docs/PERFORMANCE.md, issue 20)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.console.test_query_counts import ROWS, _clone

pytestmark = pytest.mark.django_db

PAGES = ["portal:home", "portal:invoices", "portal:credits", "portal:usage", "portal:payment_methods"]


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(captured)


@pytest.mark.parametrize("name", PAGES)
def test_a_portal_page_makes_the_same_queries_for_1_and_30_invoices(name, portal, account):
    from billing.models import Payment

    customer, _user, _subscription, invoice = account
    url = reverse(name)
    portal.get(url)
    one = _queries(portal, url)

    _clone(invoice, ROWS - 1, lambda n: {"number": f"Q-{n}"})
    _clone(
        Payment.objects.filter(customer=customer).first(),
        ROWS - 1,
        lambda n: {"idempotency_key": f"q:{n}", "attempt": n + 2},
    )
    thirty = _queries(portal, url)

    assert thirty <= one, f"{name}: {one} queries with 1 row, {thirty} with {ROWS}"
