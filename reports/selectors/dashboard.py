"""The console's home page: headline figures, MRR over twelve months and what needs attention.

Read-only and cheap: one aggregate query per figure, one query per "needs attention" list
(its first rows and its total together), MRR from the summary the beat task refreshes
(`mrr_movements` never rebuilds it on a read). The three counts of the whole book (live
subscriptions by status, receivables, subscriptions due for the next run) take seconds at a
million subscriptions: the page reads them "as of" a minute ago from `reports.HomeFigures`
(`stored_home_figures`, kept by reports/home_figures.py); the functions below that compute them
stay the reference the stored row is computed with. Every figure is for one mode: live, or test
(the console's "Test data" switch); bank statements are real money and belong to live mode.
Amounts are integer minor units per currency; the console formats them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum, Window
from django.utils import timezone

from billing.models import (
    BankStatementLine,
    BillingRunFailure,
    DunningCase,
    Payment,
    Refund,
    Subscription,
    WebhookDelivery,
)
from config.modes import scope_to_mode
from invoices.models import Invoice
from reports.filters import ReportFilters, add_months, report_timezone
from reports.models import HomeFigures
from reports.selectors.common import BILLED_STATUSES
from reports.selectors.mrr import MrrMonth, mrr_movements
from reports.selectors.mrr_source import MrrSummaryStatus, mrr_summary_status

# Subscriptions that bill: counted as "active" on the home page (trials and past-due included,
# each shown apart), and the ones the next billing run looks at.
LIVE_SUBSCRIPTION_STATUSES = ("active", "trialing", "past_due")
BILLING_RUN_BEAT_ENTRY = "billing-run"
ATTENTION_ROWS = 5
FAILED_PAYMENTS_DAYS = 30


@dataclass(frozen=True, slots=True)
class CurrencyAmount:
    currency: str
    amount: int  # minor units
    count: int = 0


@dataclass(frozen=True, slots=True)
class MrrFigure:
    currency: str
    mrr: int
    previous_mrr: int  # at the end of last month
    customers: int
    months: tuple[tuple[date, int], ...]  # (month, MRR at its end), oldest first

    @property
    def change(self) -> int:
        return self.mrr - self.previous_mrr


@dataclass(frozen=True, slots=True)
class Receivables:
    currency: str
    open_amount: int
    open_count: int
    overdue_amount: int
    overdue_count: int


@dataclass(frozen=True, slots=True)
class NextBillingRun:
    at: datetime | None  # the next tick of the beat schedule (None: not scheduled / test clocks)
    due: int  # billing subscriptions whose period ends by then


@dataclass(frozen=True, slots=True)
class BookFigures:
    """The whole-book counts of the home page, and when they were computed (None: just now,
    by the live selectors)."""

    subscriptions: dict[str, int]  # status -> count
    receivables: tuple[Receivables, ...]
    next_billing_run: NextBillingRun
    as_of: datetime | None = None
    # Billed since the start of `day`'s month (reports' time zone), per currency: a sum over
    # every invoice of the month, a million right after the month's run.
    revenue_this_month: tuple[CurrencyAmount, ...] = ()
    day: date | None = None


@dataclass(frozen=True, slots=True)
class AttentionList:
    rows: tuple[Any, ...]  # model instances, newest first
    total: int


@dataclass(frozen=True, slots=True)
class HomeDashboard:
    livemode: bool
    today: date
    month_start: datetime
    mrr: tuple[MrrFigure, ...]  # largest MRR first
    mrr_status: MrrSummaryStatus
    subscriptions: dict[str, int]  # status -> count
    revenue_this_month: tuple[CurrencyAmount, ...]
    receivables: tuple[Receivables, ...]
    failed_payments: int
    failed_payments_since: datetime
    dunning_active: int
    next_billing_run: NextBillingRun
    refunds_awaiting_approval: AttentionList
    unmatched_bank_lines: AttentionList | None  # None in test mode: statements are live money
    failed_webhooks: AttentionList
    billing_run_failures: AttentionList
    figures_as_of: datetime | None = None  # when the whole-book counts were computed (None: live)


def _this_month(now: datetime) -> tuple[date, datetime]:
    local = now.astimezone(report_timezone())
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return local.date(), first


def mrr_figures(*, livemode: bool, today: date) -> tuple[MrrFigure, ...]:
    """MRR per currency for the twelve months up to this one, from the MRR summary."""
    end = date(today.year, today.month, 1)
    start = add_months(end, -11)
    rows = mrr_movements(filters=ReportFilters(start=start, end=end, livemode=livemode))
    by_currency: dict[str, dict[date, MrrMonth]] = {}
    for row in rows:
        by_currency.setdefault(row.currency, {})[row.month] = row
    figures = []
    for currency, months in by_currency.items():
        series = []
        for offset in range(12):
            month = add_months(start, offset)
            found = months.get(month)
            series.append((month, found.mrr if found else 0))
        current = months.get(end)
        previous = series[-2][1]
        figures.append(
            MrrFigure(
                currency=currency,
                mrr=current.mrr if current else 0,
                previous_mrr=current.start_mrr if current else previous,
                customers=current.customers if current else 0,
                months=tuple(series),
            )
        )
    figures.sort(key=lambda figure: (-figure.mrr, figure.currency))
    return tuple(figures)


def subscription_counts(*, livemode: bool) -> dict[str, int]:
    rows = (
        scope_to_mode(Subscription.objects.all(), livemode=livemode)
        .filter(status__in=LIVE_SUBSCRIPTION_STATUSES)
        .values("status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    return {row["status"]: row["count"] for row in rows}


def revenue_since(*, livemode: bool, since: datetime) -> tuple[CurrencyAmount, ...]:
    """What invoices finalized since `since` billed, excluding tax, per currency (voids out)."""
    rows = (
        scope_to_mode(Invoice.objects.all(), livemode=livemode)
        .filter(status__in=BILLED_STATUSES, finalized_at__gte=since)
        .values("currency")
        .annotate(amount=Sum("total_excluding_tax"), count=Count("pk"))
        .order_by("-amount", "currency")
    )
    return tuple(CurrencyAmount(row["currency"], row["amount"] or 0, row["count"]) for row in rows)


def receivables(*, livemode: bool, today: date) -> tuple[Receivables, ...]:
    """Open invoices' remaining amounts, and those past their due date (before today)."""
    overdue = Q(due_at__date__lt=today)
    rows = (
        scope_to_mode(Invoice.objects.all(), livemode=livemode)
        .filter(status=Invoice.Status.OPEN)
        .values("currency")
        .annotate(
            open_amount=Sum("amount_remaining"),
            open_count=Count("pk"),
            overdue_amount=Sum("amount_remaining", filter=overdue),
            overdue_count=Count("pk", filter=overdue),
        )
        .order_by("-open_amount", "currency")
    )
    return tuple(
        Receivables(
            currency=row["currency"],
            open_amount=row["open_amount"] or 0,
            open_count=row["open_count"],
            overdue_amount=row["overdue_amount"] or 0,
            overdue_count=row["overdue_count"],
        )
        for row in rows
    )


def failed_payment_count(*, livemode: bool, since: datetime) -> int:
    return (
        scope_to_mode(Payment.objects.all(), livemode=livemode)
        .filter(status=Payment.Status.FAILED, attempted_at__gte=since)
        .count()
    )


def active_dunning_count(*, livemode: bool) -> int:
    return scope_to_mode(DunningCase.objects.all(), livemode=livemode).filter(status=DunningCase.Status.ACTIVE).count()


def next_beat_tick(*, entry: str, after: datetime) -> datetime | None:
    """The next run of a crontab entry of CELERY_BEAT_SCHEDULE after `after`, to the minute."""
    schedule = (getattr(settings, "CELERY_BEAT_SCHEDULE", {}).get(entry) or {}).get("schedule")
    if schedule is None or not hasattr(schedule, "minute"):
        return None
    moment = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(2 * 24 * 60):  # a crontab fires at least once in two days, or say nothing
        if (
            moment.minute in schedule.minute
            and moment.hour in schedule.hour
            and moment.isoweekday() % 7 in schedule.day_of_week
            and moment.day in schedule.day_of_month
            and moment.month in schedule.month_of_year
        ):
            return moment
        moment += timedelta(minutes=1)
    return None


def next_billing_run(*, livemode: bool, now: datetime) -> NextBillingRun:
    """Live: the next tick of the billing run's beat entry and how many subscriptions it will
    bill. Test mode: test clocks bill when advanced, so only what is due on them now."""
    at = next_beat_tick(entry=BILLING_RUN_BEAT_ENTRY, after=now) if livemode else None
    due = (
        scope_to_mode(Subscription.objects.all(), livemode=livemode)
        .filter(status__in=LIVE_SUBSCRIPTION_STATUSES, current_period_end__lte=at or now)
        .count()
    )
    return NextBillingRun(at=at, due=due)


def book_figures(*, livemode: bool, now: datetime) -> BookFigures:
    """The whole-book counts computed now, exactly (the reference; seconds at 1M)."""
    today, month_start = _this_month(now)
    return BookFigures(
        subscriptions=subscription_counts(livemode=livemode),
        receivables=receivables(livemode=livemode, today=today),
        next_billing_run=next_billing_run(livemode=livemode, now=now),
        revenue_this_month=revenue_since(livemode=livemode, since=month_start),
        day=today,
    )


def stored_home_figures(*, livemode: bool) -> BookFigures | None:
    """The counts as last stored for this mode (one row by its unique key), None if never."""
    row = HomeFigures.objects.filter(livemode=livemode).first()
    if row is None:
        return None
    return BookFigures(
        subscriptions={str(status): int(count) for status, count in row.subscriptions.items()},
        receivables=tuple(
            Receivables(
                currency=item["currency"],
                open_amount=int(item["open_amount"]),
                open_count=int(item["open_count"]),
                overdue_amount=int(item["overdue_amount"]),
                overdue_count=int(item["overdue_count"]),
            )
            for item in row.receivables
        ),
        next_billing_run=NextBillingRun(at=row.next_run_at, due=row.next_run_due),
        as_of=row.computed_at,
        revenue_this_month=tuple(
            CurrencyAmount(currency=item["currency"], amount=int(item["amount"]), count=int(item["count"]))
            for item in row.revenue_this_month
        ),
        day=row.today,
    )


def _first_rows(queryset: QuerySet, *, order: tuple[str, ...]) -> AttentionList:
    """The first rows of a list and its total, in one query (a window count over the rows)."""
    rows = list(queryset.annotate(dashboard_total=Window(Count("pk"))).order_by(*order)[:ATTENTION_ROWS])
    total = rows[0].dashboard_total if rows else 0
    return AttentionList(rows=tuple(rows), total=total)


def refunds_awaiting_approval(*, livemode: bool) -> AttentionList:
    queryset = (
        scope_to_mode(Refund.objects.all(), livemode=livemode)
        .filter(status=Refund.Status.REQUESTED)
        .select_related("payment__customer", "requested_by")
    )
    return _first_rows(queryset, order=("-requested_at", "-pk"))


def unmatched_bank_lines() -> AttentionList:
    queryset = BankStatementLine.objects.filter(status=BankStatementLine.Status.UNMATCHED).select_related("statement")
    return _first_rows(queryset, order=("-booking_date", "-pk"))


def failed_webhook_deliveries(*, livemode: bool) -> AttentionList:
    queryset = (
        scope_to_mode(WebhookDelivery.objects.all(), livemode=livemode)
        .filter(status=WebhookDelivery.Status.FAILED)
        .select_related("endpoint", "event")
    )
    return _first_rows(queryset, order=("-pk",))


def open_billing_run_failures(*, livemode: bool) -> AttentionList:
    """Subscriptions a run could not invoice and no later run has: live runs, or test clocks'."""
    queryset = BillingRunFailure.objects.filter(
        resolved_at__isnull=True, run__test_clock__isnull=livemode
    ).select_related("run", "subscription__customer")
    return _first_rows(queryset, order=("-last_attempt_at", "-pk"))


def home_dashboard(
    *,
    livemode: bool,
    now: datetime | None = None,
    sections: frozenset[str] | None = None,
    figures: BookFigures | None = None,
) -> HomeDashboard:
    """Everything the home page shows, for one mode. `sections` limits what is computed to
    what the viewer may open (names of HomeDashboard's fields); None computes everything.
    `figures`: the whole-book counts as stored (`stored_home_figures`); None counts them now."""
    now = now or timezone.now()
    today, month_start = _this_month(now)
    since_failures = now - timedelta(days=FAILED_PAYMENTS_DAYS)

    def wanted(name: str) -> bool:
        return sections is None or name in sections

    empty = AttentionList(rows=(), total=0)
    return HomeDashboard(
        livemode=livemode,
        today=today,
        month_start=month_start,
        mrr=mrr_figures(livemode=livemode, today=today) if wanted("mrr") else (),
        mrr_status=mrr_summary_status() if wanted("mrr") else MrrSummaryStatus(False, None, ""),
        subscriptions=(figures.subscriptions if figures else subscription_counts(livemode=livemode))
        if wanted("subscriptions")
        else {},
        revenue_this_month=(
            figures.revenue_this_month
            if figures and figures.day and (figures.day.year, figures.day.month) == (today.year, today.month)
            else revenue_since(livemode=livemode, since=month_start)  # none stored, or of last month
        )
        if wanted("revenue_this_month")
        else (),
        receivables=(figures.receivables if figures else receivables(livemode=livemode, today=today))
        if wanted("receivables")
        else (),
        failed_payments=failed_payment_count(livemode=livemode, since=since_failures)
        if wanted("failed_payments")
        else 0,
        failed_payments_since=since_failures,
        dunning_active=active_dunning_count(livemode=livemode) if wanted("dunning_active") else 0,
        next_billing_run=(figures.next_billing_run if figures else next_billing_run(livemode=livemode, now=now))
        if wanted("next_billing_run")
        else NextBillingRun(at=None, due=0),
        refunds_awaiting_approval=refunds_awaiting_approval(livemode=livemode)
        if wanted("refunds_awaiting_approval")
        else empty,
        unmatched_bank_lines=(unmatched_bank_lines() if wanted("unmatched_bank_lines") else empty)
        if livemode
        else None,
        failed_webhooks=failed_webhook_deliveries(livemode=livemode) if wanted("failed_webhooks") else empty,
        billing_run_failures=open_billing_run_failures(livemode=livemode) if wanted("billing_run_failures") else empty,
        figures_as_of=figures.as_of if figures else None,
    )
