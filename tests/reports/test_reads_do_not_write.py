"""Reports only read: every report GET (console dashboards and their exports, the feedback
reports page, the operations page, the reports API) runs no statement that writes or locks.

The checker scans the SQL the request ran (CaptureQueriesContext); the negative controls
prove it flags a page that writes, e.g. a report that refreshes the MRR summary first,
as reading a report did before issue 14.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from config.api.keys import api_key_create
from reports import registry
from reports.registry import REPORTS
from reports.summary import mrr_summary_refresh
from tests.reports.scenario import bill

pytestmark = pytest.mark.django_db

QUERY = "?start=2026-01&end=2026-03"
PARIS = ZoneInfo("Europe/Paris")

# A statement that changes data or schema, or takes row locks. String literals (the
# captured SQL has its parameters inlined) are blanked out before the scan.
WRITES = re.compile(
    r"\bINSERT\s+INTO\b|\bUPDATE\s+\"?\w+\"?\s+SET\b|\bDELETE\s+FROM\b|\bMERGE\s+INTO\b"
    r"|\bCREATE\s+(?:UNIQUE\s+)?(?:TEMP|TEMPORARY|TABLE|INDEX|VIEW|MATERIALIZED|SEQUENCE|TRIGGER)\b"
    r"|\bALTER\s+TABLE\b|\bDROP\s+(?:TABLE|INDEX|VIEW)\b|\bTRUNCATE\b|\bANALYZE\b|\bREFRESH\s+MATERIALIZED\b"
    r"|\bFOR\s+(?:NO\s+KEY\s+)?UPDATE\b|\bFOR\s+SHARE\b",
    re.IGNORECASE,
)


LITERAL = re.compile(r"'(?:[^']|'')*'")


def writing_statements(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries if WRITES.search(LITERAL.sub("''", query["sql"]))]


def get_without_writes(client, url: str, *, status: int = 200) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    assert len(queries) > 0, f"{url}: no query captured, the check would prove nothing"
    written = writing_statements(queries)
    assert not written, f"GET {url} wrote or locked:\n" + "\n".join(sql[:300] for sql in written)


def report_urls(scenario) -> list[str]:
    urls = ["/admin/reports/dashboard/"]
    for name, report in REPORTS.items():
        query = QUERY + (f"&customer={scenario.alice.pk}" if report.needs_customer else "")
        urls += [
            f"/admin/reports/dashboard/{name}/{query}",
            f"/admin/reports/dashboard/{name}/{query}&brand={scenario.alice.brand_id}",
            f"/admin/reports/dashboard/{name}/export.csv{query}",
            f"/admin/reports/dashboard/{name}/export.xlsx{query}",
        ]
    return urls


@pytest.fixture
def signed_in_console(console_as, client):
    console = console_as("Finance")
    console.get("/admin/reports/dashboard/")  # the session's first page may settle the session itself
    return console


@pytest.mark.parametrize("summary", ["never built", "built", "stale"])
def test_no_console_report_page_writes(signed_in_console, scenario, summary):
    if summary != "never built":
        mrr_summary_refresh()
    if summary == "stale":  # an invoice issued since the last refresh: a read must not catch up
        bill(scenario.bruno, scenario.pro, datetime(2026, 3, 1, tzinfo=PARIS), datetime(2026, 4, 1, tzinfo=PARIS))

    for url in report_urls(scenario):
        get_without_writes(signed_in_console, url)
    get_without_writes(signed_in_console, "/admin/feedback/surveyresponse/reports/")
    get_without_writes(signed_in_console, "/admin/operations/")


@pytest.mark.parametrize("summary", ["never built", "built"])
def test_no_reports_api_read_writes(staff_factory, scenario, summary):
    if summary == "built":
        mrr_summary_refresh()
    _key, raw = api_key_create(name="bi", scope="read", mode="live", created_by=staff_factory(username="bi"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    api.get("/api/v1/reports/")  # an API key's first use may note when it was last used

    get_without_writes(api, "/api/v1/reports/")
    for name, report in REPORTS.items():
        query = QUERY + (f"&customer={scenario.alice.pk}" if report.needs_customer else "")
        get_without_writes(api, f"/api/v1/reports/{name}/{query}")


def test_negative_control_a_report_that_refreshes_the_summary_is_caught(signed_in_console, scenario, monkeypatch):
    """The pre-issue-14 read path: the MRR report refreshed the summary before reading it."""

    def refreshing_build(filters):
        mrr_summary_refresh()
        return registry._mrr(filters)

    monkeypatch.setitem(REPORTS, "mrr", replace(REPORTS["mrr"], build=refreshing_build))

    with pytest.raises(AssertionError, match="wrote or locked"):
        get_without_writes(signed_in_console, f"/admin/reports/dashboard/mrr/{QUERY}")


def test_negative_control_the_checker_flags_each_kind_of_write(scenario):
    from reports.models import MrrSummaryState

    with CaptureQueriesContext(connection) as queries:
        MrrSummaryState.objects.create(pk=1)
        MrrSummaryState.objects.filter(pk=1).update(timezone="Europe/Paris")
        if connection.features.has_select_for_update:
            with transaction.atomic():
                list(MrrSummaryState.objects.select_for_update().filter(pk=1))
        MrrSummaryState.objects.filter(pk=1).delete()
    flagged = writing_statements(queries)
    kinds = [sql.split()[0].upper() for sql in flagged]
    assert kinds.count("INSERT") == 1 and kinds.count("UPDATE") == 1 and kinds.count("DELETE") == 1
    if connection.features.has_select_for_update:
        assert any("FOR UPDATE" in sql.upper() for sql in flagged)
    # and a plain read is not flagged, even when its parameters spell a write's keywords
    with CaptureQueriesContext(connection) as reads:
        list(MrrSummaryState.objects.filter(timezone="DELETE FROM x; UPDATE t SET"))
    assert not writing_statements(reads)
