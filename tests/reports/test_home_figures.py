"""Issue 20: the console home's whole-book counts (live subscriptions by status, open and
overdue receivables, subscriptions due for the next run) are read "as of" their last refresh
from `reports.HomeFigures`, not counted on every view; the refresh computes them with the
live selectors, which stay the reference (reports/home_figures.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format

from billing.models import BillingRun
from billing.services.billing_run import billing_run_finish_if_complete
from reports.home_figures import home_figures_current, home_figures_refresh
from reports.models import HomeFigures
from reports.selectors.dashboard import book_figures, stored_home_figures
from reports.tasks import refresh_home_figures
from tests.billing.payments.conftest import DECLINED, T0, charged, now, subscribe  # noqa: F401
from tests.billing.services.conftest import billing_brand, make_customer, make_price  # noqa: F401
from tests.config.test_console_home import home, kpi, sandbox_charged, sign_in  # noqa: F401

pytestmark = pytest.mark.django_db


def _time(moment) -> str:
    return date_format(timezone.localtime(moment), "TIME_FORMAT")


def test_the_refresh_stores_what_the_live_selectors_count_in_each_mode(charged, sandbox_charged, now):  # noqa: F811
    charged()
    charged(DECLINED)  # open and, a month later, overdue
    sandbox_charged()
    later = T0 + timedelta(days=40)
    now.move_to(later)

    for livemode in (True, False):
        stored = home_figures_refresh(livemode=livemode)
        reference = book_figures(livemode=livemode, now=later)
        read = stored_home_figures(livemode=livemode)

        assert read is not None and read.as_of == later
        assert read.subscriptions == reference.subscriptions == stored.subscriptions
        assert read.receivables == reference.receivables
        assert read.next_billing_run == reference.next_billing_run
    live = stored_home_figures(livemode=True)
    assert live.subscriptions.get("active", 0) + live.subscriptions.get("past_due", 0) == 2
    assert [(row.open_count, row.overdue_count) for row in live.receivables] == [(1, 1)]
    assert stored_home_figures(livemode=False).receivables == ()  # the sandbox invoice is paid
    assert HomeFigures.objects.count() == 2


def test_the_home_page_shows_the_stored_figures_and_their_time_until_the_next_refresh(
    sign_in,  # noqa: F811
    charged,  # noqa: F811
    now,  # noqa: F811
):
    charged(DECLINED)
    home_figures_refresh(livemode=True)  # as of T0: one open invoice of €34.80
    console = sign_in("Finance")
    now.move_to(T0 + timedelta(minutes=3))
    charged(DECLINED)  # a second open invoice, after the refresh

    html = home(console)

    assert kpi(html, "receivables")[1].startswith("Open receivables €34.80 1 open invoice")
    assert f"as of {_time(T0)}" in html and 'id="tarif-home-as-of"' in html

    # Negative control: the beat task's refresh brings the page up to date, with its new time.
    refresh_home_figures()
    html = home(console)

    assert kpi(html, "receivables")[1].startswith("Open receivables €69.60 2 open invoices")
    assert f"as of {_time(T0 + timedelta(minutes=3))}" in html


def test_the_first_view_computes_the_figures_once_and_stores_them(sign_in, charged):  # noqa: F811
    charged(DECLINED)
    console = sign_in("Finance")
    assert not HomeFigures.objects.exists()

    html = home(console)

    assert kpi(html, "receivables")[1].startswith("Open receivables €34.80")
    stored = HomeFigures.objects.get(livemode=True)
    assert stored.receivables[0]["open_count"] == 1
    assert not HomeFigures.objects.filter(livemode=False).exists()  # test mode: on its own first view


def test_a_refresh_that_computed_earlier_never_overwrites_a_later_one(charged, now):  # noqa: F811
    charged(DECLINED)
    home_figures_refresh(livemode=True, now=T0 + timedelta(minutes=5))
    charged(DECLINED)

    home_figures_refresh(livemode=True, now=T0 + timedelta(minutes=4))  # a slow worker finishing late

    stored = stored_home_figures(livemode=True)
    assert stored.as_of == T0 + timedelta(minutes=5)
    assert stored.receivables[0].open_count == 1


def test_the_stored_figures_are_read_without_counting_the_book(charged, django_assert_num_queries):  # noqa: F811
    charged(DECLINED)
    home_figures_refresh(livemode=True)

    with django_assert_num_queries(1):
        figures = home_figures_current(livemode=True)

    assert figures.receivables[0].open_count == 1


def test_a_finished_billing_run_asks_for_a_refresh_after_its_commit(django_capture_on_commit_callbacks, now):  # noqa: F811
    run = BillingRun.objects.create(as_of=T0, scope="live", total=0, heartbeat_at=T0)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        billing_run_finish_if_complete(run_id=run.pk)

    assert len(callbacks) == 1
    assert HomeFigures.objects.filter(livemode=True).exists()  # eager Celery ran the refresh
    with django_capture_on_commit_callbacks() as again:
        billing_run_finish_if_complete(run_id=run.pk)  # already done: nothing to refresh
    assert again == []


def test_beat_refreshes_the_home_figures_every_minute():
    entry = settings.CELERY_BEAT_SCHEDULE["reports-refresh-home-figures"]
    assert entry["task"] == "reports.refresh_home_figures"
    assert entry["schedule"].minute == set(range(60))


def test_the_months_revenue_is_stored_with_the_counts_and_never_shown_for_another_month(
    sign_in,  # noqa: F811
    charged,  # noqa: F811
    now,  # noqa: F811
):
    from reports.selectors.dashboard import home_dashboard

    charged()  # a paid invoice this month
    home_figures_refresh(livemode=True)
    stored = stored_home_figures(livemode=True)
    reference = book_figures(livemode=True, now=timezone.now())
    assert stored.revenue_this_month == reference.revenue_this_month
    assert [row.count for row in stored.revenue_this_month] == [1]

    # The page reads the stored sums in the month they were computed (no sum over the invoices) ...
    HomeFigures.objects.filter(livemode=True).update(
        revenue_this_month=[{"currency": "EUR", "amount": 123, "count": 9}]
    )
    figures = stored_home_figures(livemode=True)
    shown = home_dashboard(
        livemode=True, now=timezone.now(), sections=frozenset({"revenue_this_month"}), figures=figures
    )
    assert [(row.amount, row.count) for row in shown.revenue_this_month] == [(123, 9)]

    # ... and never a month's sums in the next month: the stale row is ignored, summed live.
    next_month = timezone.now() + timedelta(days=40)
    later = home_dashboard(livemode=True, now=next_month, sections=frozenset({"revenue_this_month"}), figures=figures)
    assert later.revenue_this_month == ()  # nothing billed in that month
