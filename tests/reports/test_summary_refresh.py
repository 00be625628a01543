"""Issue 20: the MRR summary's refresh recomputes only what changed since the last one.

Until issue 20 every refresh looked back 10 minutes before the previous one, so a refresh
right after a fresh build (or a billing run, a seed, an import) recomputed the whole
change again: 31 s per refresh at 100,000 subscriptions, and per read while reads still
refreshed. On PostgreSQL the refresh now knows exactly which changes it has seen.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine

from reports.filters import ReportFilters
from reports.selectors import mrr_movements, mrr_summary_status
from tests.reports.scenario import PERIOD, bill, paris

pytestmark = pytest.mark.django_db


def test_a_refresh_right_after_a_build_recomputes_nothing(scenario, postgres_only):
    from reports.summary import mrr_summary_refresh

    # The scenario's invoices were issued a minute before the build (within the old look-back).
    with time_machine.travel(mrr_summary_status().as_of() + timedelta(minutes=1), tick=False):
        assert mrr_summary_refresh(full=True) == -1
    figures = mrr_movements(filters=PERIOD)

    with time_machine.travel(mrr_summary_status().refreshed_at + timedelta(minutes=15), tick=False):
        assert mrr_summary_refresh() == 0  # the old look-back recomputed all 4 customers here
        assert mrr_summary_refresh() == 0

    assert mrr_movements(filters=PERIOD) == figures


def test_a_change_after_the_build_is_recomputed_once(scenario, postgres_only):
    from reports.summary import mrr_summary_refresh

    with time_machine.travel(mrr_summary_status().as_of() + timedelta(minutes=1), tick=False):
        mrr_summary_refresh(full=True)
    built_at = mrr_summary_status().refreshed_at

    with time_machine.travel(built_at + timedelta(minutes=5), tick=False):
        bill(scenario.bruno, scenario.pro, paris(2026, 3), paris(2026, 4))
    with time_machine.travel(built_at + timedelta(minutes=15), tick=False):
        assert mrr_summary_refresh() == 1  # Bruno only
    with time_machine.travel(built_at + timedelta(minutes=30), tick=False):
        assert mrr_summary_refresh() == 0

    assert mrr_movements(filters=PERIOD)[2].mrr == 21350 + 9900


def test_a_billing_run_that_bills_most_customers_rebuilds_once(scenario, postgres_only, monkeypatch):
    """The month's run changes nearly every customer: one build, not a delete and recompute
    per customer; and the refresh after it has nothing left to do."""
    from reports import summary

    monkeypatch.setattr(summary, "REBUILD_MIN_CUSTOMERS", 1)
    with time_machine.travel(mrr_summary_status().as_of() + timedelta(minutes=1), tick=False):
        summary.mrr_summary_refresh(full=True)
    built_at = mrr_summary_status().refreshed_at

    with time_machine.travel(built_at + timedelta(minutes=5), tick=False):
        for customer, price in ((scenario.alice, scenario.pro), (scenario.bruno, scenario.basic)):
            bill(customer, price, paris(2026, 4), paris(2026, 5))
        bill(scenario.david, scenario.basic, paris(2026, 4), paris(2026, 5), percent_off=50)
    with time_machine.travel(built_at + timedelta(minutes=15), tick=False):
        assert summary.mrr_summary_refresh() == -1  # 3 of 4 customers changed: rebuilt once
    with time_machine.travel(built_at + timedelta(minutes=30), tick=False):
        assert summary.mrr_summary_refresh() == 0

    april = ReportFilters(start=PERIOD.start, end=paris(2026, 4).date())
    assert mrr_movements(filters=april)[-1].mrr == 9900 + 2900 + 1450 + 10000


def test_a_write_transaction_open_during_the_refresh_is_looked_at_next_time(scenario, postgres_only):
    """Its invoices commit after the refresh with an `updated_at` before it: the next refresh
    must look back to that transaction's start."""
    from django.db import connection

    from reports.summary import mrr_summary_refresh

    opened, release, seen = threading.Event(), threading.Event(), {}

    def open_writer() -> None:
        from django.db import connection as other
        from django.db import transaction

        try:
            with transaction.atomic(), other.cursor() as cursor:
                cursor.execute("SELECT pg_current_xact_id(), now()")  # holds a transaction id from here
                seen["started"] = cursor.fetchone()[1]
                opened.set()
                release.wait(10)
        finally:
            other.close()

    writer = threading.Thread(target=open_writer)
    writer.start()
    try:
        assert opened.wait(10)
        mrr_summary_refresh(full=True)
    finally:
        release.set()
        writer.join(10)

    state = mrr_summary_status()
    with connection.cursor() as cursor:
        cursor.execute("SELECT changes_seen_until FROM reports_mrrsummarystate WHERE id = 1")
        (seen_until,) = cursor.fetchone()
    assert seen_until < seen["started"] < state.refreshed_at
