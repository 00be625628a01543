"""The console's e-reporting page: report, reconciliation (difference highlighted), chart, actions."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse

from invoices.ereporting.models import EReportingPeriod
from invoices.ereporting.services import ereporting_period_build
from tests.invoices.ereporting.conftest import IN_PERIOD
from tests.invoices.helpers import issue

pytestmark = pytest.mark.django_db


@pytest.fixture
def period(brand, vat_rates, customer_factory):
    issue(customer_factory(brand=brand, is_business=False), [123456], at=IN_PERIOD)
    return ereporting_period_build(brand=brand, livemode=True, kind="transactions", start=date(2026, 10, 1))


def test_period_page_shows_report_reconciled_and_chart(console, period):
    response = console.get(reverse("admin:ereporting_ereportingperiod_change", args=[period.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="ereporting-reconciliation"' in html and "tarif-reconciled" in html
    assert "tarif-difference" not in html
    assert 'id="ereporting-chart"' in html  # the chart's data, drawn by reports.js
    assert "1\u202f234,56\xa0€" in html or "1 234,56 €" in html or "€1,234.56" in html
    assert "TPS1" in html


def test_a_report_off_by_one_cent_is_highlighted(console, period):
    rows = period.totals["rows"]
    rows[0]["taxable_amount"] += 1
    EReportingPeriod.objects.filter(pk=period.pk).update(totals={"rows": rows})

    html = console.get(reverse("admin:ereporting_ereportingperiod_change", args=[period.pk])).content.decode()

    assert "tarif-difference" in html


def test_build_tool_refuses_a_date_that_starts_no_period(console, brand):
    url = reverse("admin:ereporting_ereportingperiod_build_tool")
    response = console.post(url, {"brand": brand.pk, "kind": "transactions", "start": "2026-10-02", "confirm": "1"})

    assert response.status_code == 200
    assert "not a period" in response.content.decode()
    assert not EReportingPeriod.objects.exists()


def test_build_tool_builds_and_list_shows_it(console, brand):
    url = reverse("admin:ereporting_ereportingperiod_build_tool")
    response = console.post(url, {"brand": brand.pk, "kind": "payments", "start": "2026-10-01", "confirm": "1"})

    period = EReportingPeriod.objects.get()
    assert response.status_code == 302 and period.end == date(2026, 10, 31)
    assert console.get(reverse("admin:ereporting_ereportingperiod_changelist")).status_code == 200


def test_submit_without_a_platform_account_says_so(console, period):
    url = reverse("admin:ereporting_ereportingperiod_submit_action", args=[period.pk])
    response = console.post(url, {"confirm": "1"})

    assert response.status_code == 200
    assert "no active platform account" in response.content.decode()
    period.refresh_from_db()
    assert period.state == "built"


def test_test_mode_period_is_not_found_in_the_live_console(console, brand):
    period = ereporting_period_build(brand=brand, livemode=False, kind="payments", start=date(2026, 10, 1))

    assert console.get(reverse("admin:ereporting_ereportingperiod_change", args=[period.pk])).status_code in (302, 404)
