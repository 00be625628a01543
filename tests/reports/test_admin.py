from __future__ import annotations

import html
import json
import re
from fractions import Fraction

import pytest

from reports.admin import heat_level
from reports.registry import RATE, REPORTS, Column

pytestmark = pytest.mark.django_db

QUERY = "?start=2026-01&end=2026-03"


CHART_DATA = re.compile(r'<script id="(report-chart-\d+)" type="application/json">(.*?)</script>', re.S)


def charts_of(page: str) -> list[dict]:
    """The chart specs a report page hands to static/tarif/admin/reports.js (json_script)."""
    return [json.loads(html.unescape(data)) for _id, data in CHART_DATA.findall(page)]


def headlines_of(page: str) -> list[tuple[str, str]]:
    block = page.split('id="report-headlines"', 1)[1].split('class="tarif-report-note"', 1)[0]
    labels = re.findall(r'tarif-headline-label">(.*?)</p>', block, re.S)
    values = re.findall(r'tarif-headline-value">(.*?)</p>', block, re.S)
    return [
        (html.unescape(label.strip()), html.unescape(value.strip()))
        for label, value in zip(labels, values, strict=True)
    ]


@pytest.mark.parametrize("group", ["Finance", "Read-only"])
def test_every_dashboard_renders_headlines_first_then_labelled_charts(console_as, scenario, group):
    client = console_as(group)

    index = client.get("/admin/reports/dashboard/")
    assert index.status_code == 200
    for name in REPORTS:
        assert f"/admin/reports/dashboard/{name}/" in index.content.decode()
        query = QUERY + (f"&customer={scenario.alice.pk}" if REPORTS[name].needs_customer else "")
        page = client.get(f"/admin/reports/dashboard/{name}/{query}")
        assert page.status_code == 200, name
        content = page.content.decode()
        charts = charts_of(content)
        if name in ("dso", "invoices-by-status", "payments", "declines", "dunning", "usage", "plan-changes"):
            continue  # the scenario has no payments, usage or plan changes: nothing to draw or count
        assert headlines_of(content), name
        assert charts, name
        # Headline figures come first, then the charts, then the table.
        assert content.index('id="report-headlines"') < content.index("tarif-chart") < content.index("report-table")
        for chart in charts:
            assert chart["title"] and chart["x_label"] and chart["y_label"], (name, chart)
            assert chart["labels"] and all(dataset["label"] for dataset in chart["datasets"]), (name, chart)
            assert all(len(dataset["data"]) == len(chart["labels"]) for dataset in chart["datasets"]), name


def test_the_mrr_page_shows_money_formatted_never_minor_units(console_as, scenario):
    client = console_as("Finance")

    content = client.get(f"/admin/reports/dashboard/mrr/{QUERY}").content.decode()

    headlines = dict(headlines_of(content))
    assert headlines["MRR"] == "€213.50"  # March's MRR, the last month of the period
    assert headlines["ARR"] == "€2,562.00"
    assert headlines["Paying customers"] == "3"
    mrr, movements = charts_of(content)
    assert mrr["unit"] == "money" and mrr["currency"] == "EUR"
    assert mrr["labels"] == ["2026-01", "2026-02", "2026-03"]
    assert mrr["datasets"][0]["data"] == [228.0, 242.5, 213.5]  # major units: the chart's ticks say €
    assert [dataset["label"] for dataset in movements["datasets"]][-1] == "net new MRR"
    table = content.split('id="report-table"', 1)[1]
    assert "€242.50" in table and "24250" not in table and "21350" not in table


def test_the_cohort_report_is_a_heat_map_with_the_value_in_each_cell(console_as, scenario):
    client = console_as("Finance")

    content = client.get(f"/admin/reports/dashboard/cohorts/{QUERY}").content.decode()

    table = content.split('id="report-table"', 1)[1]
    assert "tarif-heatmap" in content
    cells = re.findall(r'<td class="tarif-col-rate tarif-heat tarif-heat-(\d+)">(.*?)</td>', table)
    assert cells, "no shaded cell"
    # The shade follows the value, and the value itself is printed in the cell.
    assert ("10", "100.0\xa0%") in cells or ("10", "100.0 %") in cells
    assert all(text.endswith("%") for _level, text in cells)
    # The shade follows the share kept: a third of a cohort is a light cell, none the lightest.
    column = Column("month_1", "month 1", RATE)
    assert heat_level(column, {"month_1": Fraction(1, 3)}) == 3
    assert heat_level(column, {"month_1": Fraction(0, 5)}) == 0
    assert heat_level(column, {"month_1": None}) is None
    assert "MRR month 1" not in table  # in the exports only: the page must fit 1366 px


def test_the_customer_timeline_picks_a_customer_by_name_not_by_id(console_as, scenario, customer_factory):
    client = console_as("Finance")
    customer_factory(legal_name="Alicia Sandbox", livemode=False)

    found = client.get(
        "/admin/autocomplete/",
        {"term": "Ali", "app_label": "invoices", "model_name": "invoice", "field_name": "customer"},
    ).json()
    page = client.get(f"/admin/reports/dashboard/customer-timeline/{QUERY}&customer={scenario.alice.pk}")

    # The live console offers live customers only, by name; the page shows the one chosen.
    assert [item["text"] for item in found["results"]] == ["Alice"]
    assert [item["id"] for item in found["results"]] == [str(scenario.alice.pk)]
    content = page.content.decode()
    assert 'class="admin-autocomplete' in content and 'data-placeholder="Search a customer by name"' in content
    assert f'<option value="{scenario.alice.pk}" selected>Alice</option>' in content
    assert "Customer id" not in content
    rows = content.split('id="report-table"', 1)[1].split("<tbody>", 1)[1].count("<tr>")
    assert rows >= 3  # Alice's invoices of January, February and March at least
    assert dict(headlines_of(content))["Events"] == str(rows)


def test_the_plan_filter_is_a_list_of_prices(console_as, scenario):
    client = console_as("Finance")

    content = client.get(f"/admin/reports/dashboard/mrr/{QUERY}&plan={scenario.pro.pk}").content.decode()

    assert f'<option value="{scenario.pro.pk}" selected>' in content
    assert "Plan (price id)" not in content
    assert headlines_of(content)[0] == ("MRR", "€99.00")  # Alice's Pro in March


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
