from __future__ import annotations

import pytest

from reports.registry import REPORTS

pytestmark = pytest.mark.django_db

QUERY = "?start=2026-01&end=2026-03"


@pytest.mark.parametrize("group", ["Finance", "Read-only"])
def test_every_dashboard_renders_with_its_charts_for_finance_and_read_only(console_as, scenario, group):
    client = console_as(group)

    index = client.get("/admin/reports/dashboard/")
    assert index.status_code == 200
    for name in REPORTS:
        assert f"/admin/reports/dashboard/{name}/" in index.content.decode()
        query = QUERY + (f"&customer={scenario.alice.pk}" if REPORTS[name].needs_customer else "")
        page = client.get(f"/admin/reports/dashboard/{name}/{query}")
        assert page.status_code == 200, name
    mrr = client.get(f"/admin/reports/dashboard/mrr/{QUERY}").content.decode()
    assert "<svg" in mrr and "<rect" in mrr and "<polyline" in mrr
    assert "242,50" in mrr or "242.50" in mrr  # February's MRR, formatted as money


@pytest.mark.parametrize("group", ["Support", None])
def test_dashboards_are_refused_to_other_staff(console_as, group):
    client = console_as(group)

    assert client.get("/admin/reports/dashboard/").status_code == 403
    assert client.get(f"/admin/reports/dashboard/mrr/{QUERY}").status_code == 403
    assert client.get(f"/admin/reports/dashboard/mrr/export.csv{QUERY}").status_code == 403


def test_anonymous_visitors_are_sent_to_the_login(client):
    response = client.get("/admin/reports/dashboard/mrr/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_bad_filters_are_a_clear_error_not_a_crash(console_as):
    client = console_as("Finance")

    page = client.get("/admin/reports/dashboard/mrr/?start=2026-05&end=2026-01")
    assert page.status_code == 400
    assert "The period ends before it starts." in page.content.decode()
    assert client.get("/admin/reports/dashboard/mrr/export.csv?start=nonsense").status_code == 400
    assert client.get("/admin/reports/dashboard/nope/").status_code == 404
    assert client.get("/admin/reports/dashboard/mrr/export.pdf").status_code == 404


def test_the_timeline_dashboard_shows_a_customers_invoices_in_order(console_as, scenario):
    client = console_as("Read-only")

    page = client.get(
        f"/admin/reports/dashboard/customer-timeline/?start=2025-10&end=2026-03&customer={scenario.david.pk}"
    )

    content = page.content.decode()
    assert page.status_code == 200
    first, second = content.index("2025"), content.rindex("2026")
    assert first < second
