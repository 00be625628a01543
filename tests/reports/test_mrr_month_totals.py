"""Issue 20 item 7: the MRR reports read month totals per mode and currency, kept by the
summary's writer, instead of aggregating every customer-month (2 M rows for 24 months at
100,000 subscriptions). They must give exactly the figures the customer-months give, after a
build and after any scoped refresh; `verify_integrity` checks it and catches a wrong row."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.ops.integrity import integrity_verify
from invoices.services.lifecycle import invoice_void
from reports import summary
from reports.filters import ReportFilters
from reports.models import CustomerMonthMrr, MrrMonthTotal
from reports.selectors import mrr_movements, mrr_summary_status
from reports.summary import mrr_month_total_differences, mrr_summary_refresh
from tests.reports.scenario import PERIOD, bill, paris, summary_build, summary_refresh

pytestmark = pytest.mark.django_db

YEAR = ReportFilters(start=PERIOD.start.replace(year=2025, month=10), end=paris(2026, 6).date())


build, refresh = summary_build, summary_refresh


def test_the_totals_give_the_figures_the_customer_months_give(scenario):
    live = mrr_movements(filters=YEAR)  # not built yet: computed from the invoice lines
    build()

    with CaptureQueriesContext(connection) as queries:
        read = mrr_movements(filters=YEAR)
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    assert "reports_mrrmonthtotal" in sql and "reports_customermonthmrr" not in sql
    assert read == live
    assert mrr_movements(filters=PERIOD)[1].reactivation == 1450  # the hand-worked February
    eur = ReportFilters(start=YEAR.start, end=YEAR.end, currency="EUR")
    assert mrr_movements(filters=eur) == live
    assert mrr_movements(filters=ReportFilters(start=YEAR.start, end=YEAR.end, currency="USD")) == []
    assert mrr_month_total_differences() == []
    # The rebuild decision counts the summary's customers from the totals, not the table.
    distinct = CustomerMonthMrr.objects.filter(price__isnull=True).values("customer_id").distinct().count()
    assert summary._customers_in_summary() == distinct == 4


def test_a_country_or_customer_filter_reads_the_customer_months(scenario):
    build()
    france = ReportFilters(start=YEAR.start, end=YEAR.end, country="FR")

    with CaptureQueriesContext(connection) as queries:
        mrr_movements(filters=france)

    assert "reports_customermonthmrr" in " ".join(query["sql"] for query in queries.captured_queries)


def test_scoped_refreshes_keep_the_totals_equal_to_a_fresh_build(scenario, postgres_only):
    build()
    built_at = mrr_summary_status().refreshed_at

    # Bruno comes back in May, Alice upgrades her April renewal's month; David's March is voided.
    with time_machine.travel(built_at + timedelta(minutes=5), tick=False):
        bill(scenario.bruno, scenario.basic, paris(2026, 5), paris(2026, 6))
        march = scenario.david.invoices.get(period_start=paris(2026, 3))
        invoice_void(invoice=march, at=paris(2026, 5, 2))
    assert refresh(10) == 2
    assert mrr_month_total_differences() == []
    after_refresh = mrr_movements(filters=YEAR)

    mrr_summary_refresh(full=True)
    assert mrr_movements(filters=YEAR) == after_refresh
    may = next(row for row in after_refresh if row.month == paris(2026, 5).date())
    assert may.reactivated_customers == 1  # Bruno, after a gap


def test_test_mode_customers_have_totals_of_their_own(scenario, customer_factory):
    sandbox = customer_factory(legal_name="Sandbox", livemode=False)
    bill(sandbox, scenario.pro, paris(2026, 1), paris(2026, 2))
    build()

    live = mrr_movements(filters=YEAR)
    test = mrr_movements(filters=ReportFilters(start=YEAR.start, end=YEAR.end, livemode=False))

    assert sum(row.new for row in test) == 9900
    assert next(row for row in live if row.month == paris(2026, 1).date()).mrr == 22800  # as without it
    assert MrrMonthTotal.objects.filter(livemode=False).count() == 2  # January, and the churn in February
    assert mrr_month_total_differences() == []


def test_a_voided_customer_leaves_no_empty_totals(scenario, customer_factory, price_factory, postgres_only):
    """Taking away a currency's last customer removes its rows: the report lists no empty currency."""
    gwen = customer_factory(legal_name="Gwen Ltd", currency="GBP", country="GB")
    gbp = price_factory(nickname="Pro GBP", currency="GBP", unit_amount=8900)
    invoice = bill(gwen, gbp, paris(2026, 3, 2), paris(2026, 4, 2))  # after the scenario's last number
    build()
    assert MrrMonthTotal.objects.filter(currency="GBP").exists()

    with time_machine.travel(mrr_summary_status().refreshed_at + timedelta(minutes=5), tick=False):
        invoice_void(invoice=invoice, at=paris(2026, 3, 3))
    refresh(10)

    assert not MrrMonthTotal.objects.filter(currency="GBP").exists()
    assert {row.currency for row in mrr_movements(filters=YEAR)} == {"EUR"}
    assert mrr_month_total_differences() == []


def test_verify_integrity_catches_wrong_missing_and_extra_totals(scenario):
    build()
    assert integrity_verify(checks=["mrr_totals"]) == {"mrr_totals": []}
    january = MrrMonthTotal.objects.get(livemode=True, currency="EUR", month=2026 * 12)

    MrrMonthTotal.objects.filter(pk=january.pk).update(expansion=january.expansion + 1)
    (wrong,) = integrity_verify(checks=["mrr_totals"])["mrr_totals"]
    assert "live EUR 2026-01: expansion 1 (summary: 0)" in wrong.detail

    MrrMonthTotal.objects.filter(pk=january.pk).delete()
    (missing,) = integrity_verify(checks=["mrr_totals"])["mrr_totals"]
    assert "mrr -" in missing.detail

    MrrMonthTotal.objects.create(
        livemode=False, currency="JPY", month=2026 * 12, customer_months=1, customers=1, mrr=5, start_customers=0,
        start_mrr=0, new_customers=1, new=5, expansion=0, contraction=0, reactivated_customers=0, reactivation=0,
        churned_customers=0, churn=0,
    )  # fmt: skip
    assert len(integrity_verify(checks=["mrr_totals"])["mrr_totals"]) == 2


def test_the_migration_fills_the_totals_of_a_summary_built_before_it(scenario):
    build()
    kept = sorted(MrrMonthTotal.objects.values_list("livemode", "currency", "month", "mrr", "churn", "new"))
    MrrMonthTotal.objects.all().delete()
    migration = importlib.import_module("reports.migrations.0004_mrr_month_totals")

    with connection.cursor() as cursor:
        cursor.execute(migration.FILL_FROM_SUMMARY)

    assert sorted(MrrMonthTotal.objects.values_list("livemode", "currency", "month", "mrr", "churn", "new")) == kept
    assert mrr_month_total_differences() == []
