"""Issue 20 item 7: the cohort report reads cells per mode, currency, cohort and month, kept
by the MRR summary's writer, instead of joining every customer's first paying month to its
later months (about 20 M customer-months at 1,000,000 subscriptions). The cells must give
exactly the table the customer-months give, after a build and after scoped refreshes;
`verify_integrity` checks it, and catches a wrong, missing or extra cell."""

from __future__ import annotations

import importlib
from dataclasses import replace
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.ops.integrity import integrity_verify
from invoices.services.lifecycle import invoice_void
from reports import summary
from reports.filters import ReportFilters
from reports.models import MrrCohortCell
from reports.selectors import cohorts, mrr_summary_status
from reports.summary import mrr_cohort_differences, mrr_summary_refresh
from tests.reports.scenario import PERIOD, bill, paris, summary_build, summary_refresh

pytestmark = pytest.mark.django_db

YEAR = ReportFilters(start=PERIOD.start.replace(year=2025, month=10), end=paris(2026, 6).date())


build, refresh = summary_build, summary_refresh


def sql_of(queries: CaptureQueriesContext) -> str:
    return " ".join(query["sql"] for query in queries.captured_queries)


def test_the_cells_give_the_table_the_customer_months_give(scenario):
    live = {period: cohorts(filters=period) for period in (YEAR, PERIOD)}  # not built: from the lines
    build()

    with CaptureQueriesContext(connection) as queries:
        read = cohorts(filters=YEAR)
    assert "reports_mrrcohortcell" in sql_of(queries) and "reports_customermonthmrr" not in sql_of(queries)
    assert read == live[YEAR]
    assert cohorts(filters=PERIOD) == live[PERIOD]
    # October 2025: David (29 €, then gone until February); December: Alice (29 €) and Bruno
    # (99 €); January: Chloé (1,200 € a year: 100 € a month).
    assert [(row.cohort.isoformat(), row.customers, row.starting_mrr) for row in read] == [
        ("2025-10-01", 1, 2900),
        ("2025-12-01", 2, 2900 + 9900),
        ("2026-01-01", 1, 10000),
    ]
    assert read[0].retained_customers[:6] == (1, 0, 0, 0, 1, 1)  # David back in February and March
    assert cohorts(filters=replace(YEAR, currency="EUR")) == live[YEAR]
    assert cohorts(filters=replace(YEAR, currency="USD")) == []
    assert mrr_cohort_differences() == []


def test_a_country_or_customer_filter_reads_the_customer_months(scenario):
    build()
    for filters in (replace(YEAR, country="FR"), replace(YEAR, customer=scenario.david.pk)):
        with CaptureQueriesContext(connection) as queries:
            rows = cohorts(filters=filters)
        assert "reports_customermonthmrr" in sql_of(queries)
    assert [row.customers for row in rows] == [1]  # David's own cohort


def change_the_book(scenario, customer_factory) -> None:
    """Eve starts in April (a new cohort), Chloé's yearly invoice is voided (her cohort goes)."""
    with time_machine.travel(mrr_summary_status().refreshed_at + timedelta(minutes=5), tick=False):
        eve = customer_factory(legal_name="Eve SAS")
        bill(eve, scenario.pro, paris(2026, 4), paris(2026, 5))
        bill(eve, scenario.pro, paris(2026, 5), paris(2026, 6))
        yearly = scenario.chloe.invoices.get()
        invoice_void(invoice=yearly, at=paris(2026, 5, 2))


def test_scoped_refreshes_keep_the_cells_equal_to_a_fresh_build(scenario, customer_factory, postgres_only):
    build()
    change_the_book(scenario, customer_factory)

    assert refresh(10) == 2
    assert mrr_cohort_differences() == []
    after_refresh = cohorts(filters=YEAR)
    assert [(row.cohort.isoformat(), row.customers) for row in after_refresh] == [
        ("2025-10-01", 1),
        ("2025-12-01", 2),
        ("2026-04-01", 1),  # Eve
    ]
    assert not MrrCohortCell.objects.filter(cohort=2026 * 12).exists()  # Chloé's January: removed, not zero

    mrr_summary_refresh(full=True)
    assert cohorts(filters=YEAR) == after_refresh


def test_control_a_refresh_that_forgets_the_old_cells_is_caught(scenario, customer_factory, postgres_only, monkeypatch):
    """The negative control of the check above: cells added but never taken away."""
    build()
    change_the_book(scenario, customer_factory)
    keep = summary._cohort_cells_add

    def add_only(cursor, *, sign: int, scoped: bool) -> None:
        if sign > 0:
            keep(cursor, sign=sign, scoped=scoped)

    monkeypatch.setattr(summary, "_cohort_cells_add", add_only)
    refresh(10)

    differences = mrr_cohort_differences()
    assert any("live EUR 2026-01 2026-01: customers 1 (summary: -)" in d for d in differences)
    (violation, *_) = integrity_verify(checks=["mrr_cohorts"])["mrr_cohorts"]
    assert violation.check == "mrr_cohorts"


def test_test_mode_customers_have_cells_of_their_own(scenario, customer_factory):
    sandbox = customer_factory(legal_name="Sandbox", livemode=False)
    bill(sandbox, scenario.pro, paris(2026, 1), paris(2026, 2))
    build()

    test = cohorts(filters=replace(YEAR, livemode=False))

    assert [(row.cohort.isoformat(), row.customers, row.starting_mrr) for row in test] == [("2026-01-01", 1, 9900)]
    assert [row.customers for row in cohorts(filters=YEAR)] == [1, 2, 1]  # as without it
    assert MrrCohortCell.objects.filter(livemode=False).count() == 1
    assert mrr_cohort_differences() == []


def test_verify_integrity_catches_wrong_missing_and_extra_cells(scenario):
    build()
    assert integrity_verify(checks=["mrr_cohorts"]) == {"mrr_cohorts": []}
    january = MrrCohortCell.objects.get(livemode=True, currency="EUR", cohort=2026 * 12, month=2026 * 12)

    MrrCohortCell.objects.filter(pk=january.pk).update(mrr=january.mrr + 1)
    (wrong,) = integrity_verify(checks=["mrr_cohorts"])["mrr_cohorts"]
    assert "live EUR 2026-01 2026-01: mrr 10001 (summary: 10000)" in wrong.detail

    MrrCohortCell.objects.filter(pk=january.pk).delete()
    (missing,) = integrity_verify(checks=["mrr_cohorts"])["mrr_cohorts"]
    assert "customers - (summary: 1)" in missing.detail

    MrrCohortCell.objects.create(livemode=False, currency="JPY", cohort=2026 * 12, month=2026 * 12, customers=1, mrr=5)
    assert len(integrity_verify(checks=["mrr_cohorts"])["mrr_cohorts"]) == 2


def test_the_migration_fills_the_cells_of_a_summary_built_before_it(scenario):
    build()
    kept = sorted(MrrCohortCell.objects.values_list("livemode", "currency", "cohort", "month", "customers", "mrr"))
    assert kept
    MrrCohortCell.objects.all().delete()
    migration = importlib.import_module("reports.migrations.0006_mrr_cohort_cells")

    with connection.cursor() as cursor:
        cursor.execute(migration.FILL_FROM_SUMMARY)

    assert sorted(MrrCohortCell.objects.values_list("livemode", "currency", "cohort", "month", "customers", "mrr")) == (
        kept
    )
