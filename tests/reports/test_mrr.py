from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

from reports.selectors import cohorts, mrr_movements, retention, revenue_recognition
from tests.reports.scenario import PERIOD

pytestmark = pytest.mark.django_db


def test_mrr_movements_of_the_hand_built_scenario(scenario):
    months = mrr_movements(filters=PERIOD)

    assert [row.month for row in months] == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    january, february, march = months
    # January: Alice 29 + Bruno 99 carried over, Chloé's yearly 1 200 / 12 is new.
    assert (january.start_mrr, january.mrr, january.customers) == (12800, 22800, 3)
    assert (january.new, january.expansion, january.contraction, january.churn, january.reactivation) == (
        10000,
        0,
        0,
        0,
        0,
    )
    # February: Alice up to Pro, Bruno down to Basic, David back at half price (tax excluded).
    assert (february.mrr, february.customers) == (24250, 4)
    assert (february.new, february.expansion, february.contraction, february.churn, february.reactivation) == (
        0,
        7000,
        -7000,
        0,
        1450,
    )
    assert february.reactivated_customers == 1
    # March: Bruno has no invoice any more.
    assert (march.mrr, march.churn, march.churned_customers, march.net_new) == (21350, -2900, 1, -2900)
    assert march.arr == 21350 * 12
    assert all(row.currency == "EUR" for row in months)
    # Every month's movements explain the change of MRR exactly.
    assert all(row.start_mrr + row.net_new == row.mrr for row in months)


def test_churn_rates_and_net_revenue_retention(scenario):
    january, february, march = retention(filters=PERIOD)

    assert january.customer_churn_rate == 0
    assert february.net_revenue_retention == 1  # +70 and -70 among customers already paying
    assert march.customer_churn_rate == Fraction(1, 4)
    assert march.revenue_churn_rate == Fraction(2900, 24250)
    assert march.net_revenue_retention == Fraction(24250 - 2900, 24250)


def test_cohort_table_counts_new_customers_only(scenario):
    rows = cohorts(filters=PERIOD)

    assert len(rows) == 1  # David came back (reactivation), Alice and Bruno started before
    (january,) = rows
    assert (january.cohort, january.customers, january.starting_mrr) == (date(2026, 1, 1), 1, 10000)
    assert january.retained_customers == (1, 1, 1)
    assert january.retained_mrr == (10000, 10000, 10000)


def test_yearly_plan_is_recognized_monthly_and_the_rest_is_deferred(scenario):
    rows = revenue_recognition(filters=PERIOD)

    january, february, march = rows
    assert january.invoiced == 2900 + 9900 + 120000
    assert january.recognized == 2900 + 9900 + 10000
    assert january.deferred == 110000
    assert (february.invoiced, february.recognized, february.deferred) == (9900 + 2900 + 1450, 24250, 100000)
    assert (march.recognized, march.deferred) == (21350, 90000)


def test_filters_narrow_the_mrr(scenario, customer_factory):
    from dataclasses import replace

    only_pro = mrr_movements(filters=replace(PERIOD, plan=scenario.pro.pk))
    assert [row.mrr for row in only_pro] == [9900, 9900, 9900]  # Bruno in January, then Alice
    assert mrr_movements(filters=replace(PERIOD, currency="USD")) == []
    assert mrr_movements(filters=replace(PERIOD, country="DE")) == []
    assert [row.mrr for row in mrr_movements(filters=replace(PERIOD, customer=scenario.chloe.pk))] == [10000] * 3


def test_the_brand_filtered_path_agrees_with_the_summary_totals(scenario):
    from dataclasses import replace

    everything = mrr_movements(filters=PERIOD)
    one_brand = mrr_movements(filters=replace(PERIOD, brand=scenario.alice.brand_id))

    assert one_brand == everything


def test_the_summary_follows_new_and_voided_invoices_at_its_next_refresh(scenario):
    """Reads show the summary as it stands (as of its last refresh); the refresh catches up."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from invoices.services.lifecycle import invoice_void
    from reports.selectors import mrr_summary_status
    from reports.summary import mrr_summary_refresh
    from tests.reports.scenario import bill

    mrr_summary_refresh()
    before = mrr_movements(filters=PERIOD)
    assert before[2].mrr == 21350
    march_of_david = scenario.david.invoices.get(period_start=datetime(2026, 3, 1, tzinfo=ZoneInfo("Europe/Paris")))
    as_of = mrr_summary_status().as_of()

    invoice_void(invoice=march_of_david, at=datetime(2026, 3, 2, tzinfo=ZoneInfo("Europe/Paris")))
    bill(
        scenario.bruno,
        scenario.pro,
        datetime(2026, 3, 1, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(2026, 4, 1, tzinfo=ZoneInfo("Europe/Paris")),
    )

    # A read neither refreshes nor moves the as-of: the figures are those of the last refresh.
    assert mrr_movements(filters=PERIOD) == before
    assert mrr_summary_status().as_of() == as_of

    mrr_summary_refresh()
    after = mrr_movements(filters=PERIOD)
    assert after[2].mrr == 21350 - 1450 + 9900
    assert (after[2].churn, after[2].expansion) == (-1450, 7000)  # David left in March; Bruno went back to Pro
    assert mrr_summary_status().as_of() > as_of


def test_cohorts_agree_with_a_brand_filter(scenario):
    from dataclasses import replace

    assert cohorts(filters=replace(PERIOD, brand=scenario.alice.brand_id)) == cohorts(filters=PERIOD)


def test_the_beat_task_refreshes_the_summary_and_the_as_of_moves(scenario):
    from datetime import timedelta

    import time_machine

    from reports.models import CustomerMonthMrr
    from reports.selectors import mrr_summary_status
    from reports.tasks import refresh_mrr_summary
    from tests.reports.scenario import bill, paris

    assert not mrr_summary_status().built  # nothing reads or builds it but the refresh
    # The first refresh builds everything (after the scenario's invoices, out of SQLite's look-back).
    with time_machine.travel(mrr_summary_status().as_of() + timedelta(minutes=11), tick=False):
        assert refresh_mrr_summary() == -1
    first = mrr_summary_status()
    assert first.built and first.as_of() == first.refreshed_at
    # Paying customer-months: Oct 1, Dec 2, Jan 3, Feb 4, Mar 3, then Chloé's yearly April-December.
    assert CustomerMonthMrr.objects.filter(price__isnull=True, mrr__gt=0).count() == 1 + 2 + 3 + 4 + 3 + 9

    with time_machine.travel(first.refreshed_at + timedelta(minutes=5), tick=False):
        bill(scenario.bruno, scenario.pro, paris(2026, 3), paris(2026, 4))
    with time_machine.travel(first.refreshed_at + timedelta(minutes=15), tick=False):
        assert refresh_mrr_summary() == 1  # the customer invoiced since, recomputed
        assert mrr_summary_status().as_of() == first.refreshed_at + timedelta(minutes=15)


def test_the_live_figures_equal_the_summarys(scenario):
    """Before the first refresh the MRR reports compute the summary's rows on the fly from
    the invoice lines: same figures, filter by filter, as the built table."""
    from dataclasses import replace

    from reports.selectors import mrr_summary_status
    from reports.summary import mrr_summary_refresh

    variants = [
        PERIOD,
        replace(PERIOD, brand=scenario.alice.brand_id),
        replace(PERIOD, plan=scenario.pro.pk),
        replace(PERIOD, customer=scenario.chloe.pk),
        replace(PERIOD, currency="USD"),
        replace(PERIOD, livemode=False),
    ]
    readers = (mrr_movements, retention, cohorts)
    live = [reader(filters=filters) for filters in variants for reader in readers]
    assert not mrr_summary_status().built
    assert any(live)

    mrr_summary_refresh()

    assert [reader(filters=filters) for filters in variants for reader in readers] == live


def test_the_refresh_command_builds_the_summary(scenario):
    import io

    from django.core.management import call_command

    from reports.selectors import mrr_summary_status

    out = io.StringIO()
    call_command("reports_refresh_mrr_summary", "--full", stdout=out)

    assert mrr_summary_status().built
    assert "every customer" in out.getvalue() and "figures as of" in out.getvalue()
