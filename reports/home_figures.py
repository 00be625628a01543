"""The console home's whole-book counts, stored per mode "as of" a minute ago (issue 20).

Counting 914,055 live subscriptions, 165,222 open invoices and a million subscriptions due
takes about four seconds at a million subscriptions (and summing the month's invoices, up to a
million right after the month's run, more), and grows with the book: the home page
cannot do it on every view. As Stripe's dashboard does, it shows them as of the last refresh
with the time: `home_figures_refresh` computes them with the live selectors
(reports/selectors/dashboard.py: `book_figures`, the reference) and stores one row per mode
(`reports.HomeFigures`). Written by:
- the beat task `reports.refresh_home_figures`, every minute (the durable path: whatever a
  billing run, a payment or a test clock changed is in the figures within a minute or two);
- the same task enqueued when a billing run finishes (only sooner, never instead of beat);
- the home page itself, once, when no row exists yet for its mode (`home_figures_current`).

The time is the system clock (`config.clock.system_now`): figures of the whole book, which no
test clock moves; test mode's "due" counts what is due on the test clocks at that instant, as
the live selector does. No lock: a refresh that computed earlier never overwrites a later one
(the update is conditional on `computed_at`), and two first inserts keep one row.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from django.db import transaction

from config import clock
from reports.filters import report_timezone
from reports.models import HomeFigures
from reports.selectors.dashboard import BookFigures, book_figures, stored_home_figures


def home_figures_refresh(*, livemode: bool, now: datetime | None = None) -> BookFigures:
    """Compute this mode's whole-book counts now and store them; returns what was computed."""
    now = now or clock.system_now()
    figures = book_figures(livemode=livemode, now=now)
    values = {
        "computed_at": now,
        "today": now.astimezone(report_timezone()).date(),
        "subscriptions": dict(sorted(figures.subscriptions.items())),
        "receivables": [asdict(row) for row in figures.receivables],
        "next_run_at": figures.next_billing_run.at,
        "next_run_due": figures.next_billing_run.due,
        "revenue_this_month": [asdict(row) for row in figures.revenue_this_month],
    }
    with transaction.atomic(savepoint=False):
        updated = HomeFigures.objects.filter(livemode=livemode, computed_at__lte=now).update(**values)
        if not updated:
            HomeFigures.objects.bulk_create([HomeFigures(livemode=livemode, **values)], ignore_conflicts=True)
    return BookFigures(
        subscriptions=figures.subscriptions,
        receivables=figures.receivables,
        next_billing_run=figures.next_billing_run,
        as_of=now,
        revenue_this_month=figures.revenue_this_month,
        day=figures.day,
    )


def home_figures_refresh_all(*, now: datetime | None = None) -> int:
    """Both modes (the beat task); returns how many were refreshed."""
    now = now or clock.system_now()
    for livemode in (True, False):
        home_figures_refresh(livemode=livemode, now=now)
    return 2


def home_figures_current(*, livemode: bool) -> BookFigures:
    """What the home page shows: the stored figures, or, the first time (none stored yet for
    this mode), computed now and stored so the next view reads them."""
    return stored_home_figures(livemode=livemode) or home_figures_refresh(livemode=livemode)
