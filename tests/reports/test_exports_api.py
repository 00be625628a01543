from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from openpyxl import load_workbook
from rest_framework.test import APIClient

from config.api.keys import api_key_create

pytestmark = pytest.mark.django_db

QUERY = "?start=2026-01&end=2026-03"


def test_csv_export_holds_the_mrr_table(console_as, scenario):
    client = console_as("Finance")

    response = client.get(f"/admin/reports/dashboard/mrr/export.csv{QUERY}")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="mrr-2026-01-2026-03.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row["month"] for row in rows] == ["2026-01", "2026-02", "2026-03"]
    assert [row["MRR"] for row in rows] == ["228.00", "242.50", "213.50"]
    assert rows[1]["reactivation"] == "14.50"
    assert rows[2]["churn"] == "-29.00"


def test_exports_of_summary_reports_say_as_of_when(console_as, scenario):
    client = console_as("Finance")

    mrr = client.get(f"/admin/reports/dashboard/mrr/export.csv{QUERY}")
    cohorts = client.get(f"/admin/reports/dashboard/cohorts/export.xlsx{QUERY}")
    billed = client.get(f"/admin/reports/dashboard/billed/export.csv{QUERY}")

    mrr_rows = list(csv.DictReader(io.StringIO(mrr.content.decode("utf-8-sig"))))
    stamps = {row["as of"] for row in mrr_rows}
    assert len(stamps) == 1
    stamp = datetime.fromisoformat(stamps.pop().replace("Z", "+00:00"))
    assert stamp.tzinfo is not None and abs((timezone.now() - stamp).total_seconds()) < 600
    header, *_rows = list(load_workbook(io.BytesIO(cohorts.content)).active.values)
    assert header[-1] == "as of"
    # Billed revenue reads its month summary when built (issue 20): its files say as of when too
    # (here computed from the invoices, the summary never built: as of the request).
    billed_rows = list(csv.DictReader(io.StringIO(billed.content.decode("utf-8-sig"))))
    billed_stamp = datetime.fromisoformat(billed_rows[0]["as of"].replace("Z", "+00:00"))
    assert abs((timezone.now() - billed_stamp).total_seconds()) < 600
    # A report computed from the source rows only: no "as of" column (payments reads a summary
    # since issue 20 item 7, so dunning is the example).
    dunning = client.get(f"/admin/reports/dashboard/dunning/export.csv{QUERY}")
    assert "as of" not in dunning.content.decode("utf-8-sig").splitlines()[0]


def test_xlsx_export_holds_numbers(console_as, scenario):
    client = console_as("Read-only")

    response = client.get(f"/admin/reports/dashboard/retention/export.xlsx{QUERY}")

    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    header, *rows = list(sheet.values)
    assert header[0] == "month"
    march = dict(zip(header, rows[2], strict=True))
    assert Decimal(str(march["customer churn rate"])) == Decimal("0.25")
    assert march["churned customers"] == 1


def _key_client(staff_factory) -> APIClient:
    """Reports over the API are for integrators' keys (a read-only key is enough)."""
    _key, raw = api_key_create(name="reports", scope="read", mode="live", created_by=staff_factory(username="bi"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def test_api_gives_minor_units_and_refuses_strangers(client, staff_factory, scenario):
    anonymous = client.get(f"/api/v1/reports/mrr/{QUERY}")
    assert anonymous.status_code == 401

    # a staff session is the console's way in, not the API's
    finance = staff_factory(username="compta")
    finance.groups.add(Group.objects.get(name="Finance"))
    client.force_login(finance)
    assert client.get(f"/api/v1/reports/mrr/{QUERY}").status_code == 401

    client = _key_client(staff_factory)
    body = client.get(f"/api/v1/reports/mrr/{QUERY}").json()
    assert [row["mrr"] for row in body["rows"]] == [22800, 24250, 21350]
    assert body["filters"]["start"] == "2026-01"
    retention = client.get(f"/api/v1/reports/retention/{QUERY}").json()
    assert retention["rows"][2]["customer_churn_rate"] == "0.2500"
    listing = client.get("/api/v1/reports/").json()
    assert "mrr" in {report["name"] for report in listing["reports"]}


def test_api_filter_errors_are_problem_json(staff_factory):
    client = _key_client(staff_factory)

    bad = client.get("/api/v1/reports/mrr/?currency=EURO")
    assert bad.status_code == 400
    assert bad["Content-Type"].startswith("application/problem+json")
    assert "currency" in bad.json()["detail"]
    assert client.get("/api/v1/reports/unknown/").status_code == 404
    assert client.get("/api/v1/reports/customer-timeline/").status_code == 400


def test_plan_change_history_over_the_api_keeps_customers_with_enough_changes(staff_factory, customer):
    from datetime import UTC, datetime

    from billing.models import Subscription, SubscriptionChange

    client = _key_client(staff_factory)
    subscription = Subscription.objects.create(
        customer=customer,
        status="active",
        currency="EUR",
        cycle={"kind": "interval", "unit": "month", "count": 1},
        billing_cycle_anchor=datetime(2026, 1, 1, tzinfo=UTC),
        current_period_start=datetime(2026, 1, 1, tzinfo=UTC),
        current_period_end=datetime(2026, 2, 1, tzinfo=UTC),
    )
    for month in (1, 2, 4):
        SubscriptionChange.objects.create(
            subscription=subscription, kind="change", effective_at=datetime(2026, month, 10, tzinfo=UTC)
        )

    three = client.get("/api/v1/reports/plan-changes/?start=2026-01&end=2026-06&min_changes=3").json()
    four = client.get("/api/v1/reports/plan-changes/?start=2026-01&end=2026-06&min_changes=4").json()

    assert [(row["customer_id"], row["changes"]) for row in three["rows"]] == [(customer.pk, 3)]
    assert four["rows"] == []
    assert client.get("/api/v1/reports/plan-changes/?min_changes=0").status_code == 400


def test_api_and_dashboard_say_as_of_when_the_figures_are(console_as, staff_factory, scenario):
    from django.utils import timezone

    from reports.selectors import mrr_summary_status
    from reports.summary import mrr_summary_refresh

    api = _key_client(staff_factory)
    before = timezone.now()
    live = api.get(f"/api/v1/reports/mrr/{QUERY}").json()
    assert live["as_of_source"] == "live"  # never built: computed from the invoices at the request
    assert live["as_of"] >= before.isoformat().replace("+00:00", "Z")[:19]
    aging = api.get(f"/api/v1/reports/ar-aging/{QUERY}").json()
    assert aging["as_of_source"] == "live" and aging["next_refresh"] is None

    mrr_summary_refresh()
    refreshed_at = mrr_summary_status().refreshed_at
    body = api.get(f"/api/v1/reports/retention/{QUERY}").json()
    assert body["as_of_source"] == "summary"
    assert body["as_of"] == refreshed_at.isoformat().replace("+00:00", "Z")
    assert body["next_refresh"] > body["as_of"]

    page = console_as("Finance").get(f"/admin/reports/dashboard/mrr/{QUERY}").content.decode()
    assert "Figures as of" in page and "last refresh of the MRR summary" in page and "Next refresh" in page
    index = console_as("Read-only").get("/admin/reports/dashboard/").content.decode()
    assert "MRR summary as of" in index


def test_a_multi_currency_report_charts_the_functional_currency_unless_filtered(settings):
    from reports.filters import ReportFilters
    from reports.registry import _chart_currency
    from reports.selectors.receivables import AgingRow

    rows = [AgingRow("CAD", "current", 1, 100), AgingRow("EUR", "current", 1, 50), AgingRow("USD", "1-30", 1, 9)]
    period = ReportFilters(start=date(2026, 1, 1), end=date(2026, 3, 1))
    settings.TARIF_LEDGER_FUNCTIONAL_CURRENCY = "EUR"
    assert _chart_currency(rows, period) == "EUR"  # not CAD, the first in alphabetical order
    assert _chart_currency(rows, ReportFilters(start=period.start, end=period.end, currency="USD")) == "USD"
    settings.TARIF_LEDGER_FUNCTIONAL_CURRENCY = "JPY"  # not among the rows
    assert _chart_currency(rows, period) == "CAD"
