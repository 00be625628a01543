"""Issue 20: the API's lists make a fixed number of queries for a page of 1 or 30 rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.console.test_query_counts import ROWS, _more_rows
from tests.console_pages import console_world

pytestmark = pytest.mark.django_db

LISTS = {
    "/api/v1/invoices?limit=50": "invoices.invoice",
    "/api/v1/invoices?limit=50&expand=customer": "invoices.invoice",
    "/api/v1/customers?limit=50": "customers.customer",
    "/api/v1/subscriptions?limit=50": "billing.subscription",
    "/api/v1/events?limit=50": "events.domainevent",
}


def _queries(api, url: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = api.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return len(captured), len(response.json()["data"])


@pytest.mark.parametrize("url", LISTS)
def test_an_api_list_makes_the_same_queries_for_1_and_30_rows(url, api):
    world = console_world()
    api.get(url)
    one, rows_before = _queries(api, url)

    _more_rows(LISTS[url], world)
    thirty, rows_after = _queries(api, url)

    assert rows_after >= rows_before + ROWS - 1
    assert thirty <= one, f"{url}: {one} queries for {rows_before} rows, {thirty} for {rows_after}"
