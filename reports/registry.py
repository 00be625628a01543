"""The reports as tables (columns + rows) with their chart: one definition feeds the
admin dashboard, the CSV/XLSX exports and the API, so the three always agree.

Every table says how current its figures are (`ReportTable.as_of`): the MRR reports read
the MRR summary as it stands (refreshed by its beat task, never by a read), the others
are computed from the source rows at the read."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from django.conf import settings
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from config import clock
from config.db_routers import use_replica
from reports import selectors
from reports.charts import DAYS, PERCENT, Chart, Series, bar_chart, line_chart
from reports.charts import MONEY as MONEY_UNIT
from reports.filters import ReportFilters, add_months, month_start, months_between, report_timezone

TEXT, INT, MONEY, RATE, MONTH, DATETIME, DURATION, DECIMAL = (
    "text",
    "int",
    "money",
    "rate",
    "month",
    "datetime",
    "duration",
    "decimal",
)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: Any  # lazy translation
    kind: str = TEXT
    on_screen: bool = True  # False: in the exports and the API only (the page's table must fit 1366 px)


@dataclass(frozen=True, slots=True)
class Headline:
    """A figure shown first on a report's page, above its chart (a card)."""

    label: Any  # lazy translation
    value: Any
    kind: str = INT  # a column kind: how the value is formatted
    currency: str | None = None  # MONEY only


SUMMARY, LIVE = "summary", "live"


@dataclass(frozen=True, slots=True)
class AsOf:
    """The instant a report's figures describe, and where they come from: `summary` (the
    MRR summary's last refresh: later invoice changes are not in them yet) or `live`
    (computed from the source rows when the report was read)."""

    at: datetime
    source: str
    next_refresh: datetime | None = None  # summary only: the beat task's next run


@dataclass(frozen=True, slots=True)
class ReportTable:
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    charts: tuple[Chart, ...] = ()
    notes: tuple[Any, ...] = ()
    as_of: AsOf | None = None  # set by the registry (`report`), not by each build
    headlines: tuple[Headline, ...] = ()
    # Issue 20 item 7: a report whose full list is too long for a page (usage: one row per
    # customer and meter) shows a digest in `rows` and gives the full list here, for the
    # CSV/XLSX exports (streamed) and the API (pages of `FullList.page`).
    full_list: FullList | None = None


@dataclass(frozen=True, slots=True)
class FullList:
    """The complete per-row list behind a digest page: `columns`, `stream()` (every row, in
    the files' order, bounded memory) and `page(after, limit)` (keyset pages for the API:
    `after` is the previous page's last `key(row)`, None for the first page)."""

    columns: tuple[Column, ...]
    stream: Callable[[], Iterator[dict[str, Any]]]
    page: Callable[[tuple[int, int] | None, int], list[dict[str, Any]]]
    key: Callable[[dict[str, Any]], tuple[int, int]]
    note: Any = ""  # the page's sentence saying what it shows and where the rest is


@dataclass(frozen=True, slots=True)
class Report:
    name: str  # URL slug: /admin/reports/dashboard/<name>/, /api/v1/reports/<name>/
    title: Any
    description: Any
    build: Callable[[ReportFilters], ReportTable]
    needs_customer: bool = False
    extra_filters: tuple[str, ...] = ()  # form fields only this report uses
    reads_summary: bool = False  # figures from the MRR summary, as of its last refresh
    summary: str = ""  # issue 20: the month summary it reads when built (reports/summaries.py)

    @property
    def shown_filters(self) -> tuple[str, ...]:
        return ("start", "end", "brand", "currency", "plan", "country", *self.extra_filters)


REPORTS: dict[str, Report] = {}


def figures_as_of(*, reads_summary: bool, summary: str = "", filters: ReportFilters | None = None) -> AsOf:
    """How current a report's figures will be. Read before the figures, so a refresh that
    commits while the report runs only makes them newer than claimed (the one exception,
    harmless: the very first build committing mid-read, claimed "live" as of now)."""
    now = clock.system_now()
    if summary == selectors.USAGE_DIGEST and filters is not None:
        digest_at = selectors.usage_digest_as_of(filters=filters)
        if digest_at is None:
            return AsOf(at=now, source=LIVE)
        return AsOf(
            at=digest_at,
            source=SUMMARY,
            next_refresh=selectors.next_summary_refresh(after=now, entry_name=selectors.USAGE_DIGEST_BEAT_ENTRY),
        )
    if summary and filters is not None:
        if selectors.summary_serves(name=summary, filters=filters):
            state = selectors.summary_status(name=summary)
            return AsOf(
                at=state.as_of(now=now),
                source=SUMMARY,
                next_refresh=selectors.next_summary_refresh(after=now, entry_name=selectors.SUMMARIES_BEAT_ENTRY),
            )
        return AsOf(at=now, source=LIVE)
    if reads_summary:
        status = selectors.mrr_summary_status()
        return AsOf(
            at=status.as_of(now=now),
            source=SUMMARY if status.built else LIVE,
            next_refresh=selectors.next_summary_refresh(after=now),
        )
    return AsOf(at=now, source=LIVE)


def report(
    name: str,
    title: Any,
    description: Any,
    *,
    needs_customer: bool = False,
    extra_filters: tuple[str, ...] = (),
    reads_summary: bool = False,
    summary: str = "",
):
    def register(build: Callable[[ReportFilters], ReportTable]) -> Callable[[ReportFilters], ReportTable]:
        extra = ("customer", *extra_filters) if needs_customer else extra_filters

        def build_with_as_of(filters: ReportFilters) -> ReportTable:
            # Issue 20: every report (its page, exports and API) reads the replica when the lag guard allows.
            with use_replica():
                as_of = figures_as_of(reads_summary=reads_summary, summary=summary, filters=filters)
                return replace(build(filters), as_of=as_of)

        REPORTS[name] = Report(
            name, title, description, build_with_as_of, needs_customer, extra, reads_summary, summary
        )
        return build

    return register


def _major(amount: int | None) -> float:
    # Chart heights only (never stored or added up): minor units to major units.
    return (amount or 0) / 100


def _chart_currency(rows: Sequence[Any], filters: ReportFilters) -> str | None:
    """The currency a multi-currency report charts: the filter's, else the books' functional
    currency (TARIF_LEDGER_FUNCTIONAL_CURRENCY, the company's reporting currency), else the
    first in alphabetical order."""
    currencies = sorted({row.currency for row in rows})
    for preferred in (filters.currency, settings.TARIF_LEDGER_FUNCTIONAL_CURRENCY):
        if preferred in currencies:
            return preferred
    return currencies[0] if currencies else None


def _month_label(month: date) -> str:
    return f"{month:%Y-%m}"


MONTH_AXIS = _("month")


def _amount_axis(currency: str | None) -> str:
    return str(_("amount (%(currency)s)") % {"currency": currency or "—"})


def _sum(rows: Sequence[Any], attribute: str) -> int:
    return sum(getattr(row, attribute) or 0 for row in rows)


def _currency_note(rows: Sequence[Any], currency: str | None) -> tuple[Any, ...]:
    if len({row.currency for row in rows}) > 1:
        return (
            _("Several currencies: the charts show %(currency)s; filter by currency to see another.")
            % {"currency": currency},
        )
    return ()


@report(
    "mrr",
    _("MRR, ARR and MRR movements"),
    _(
        "Monthly recurring revenue at each month's end, net of discounts, excluding tax, usage and one-off "
        "charges; yearly and quarterly plans normalised to a month. Movements explain each month's change."
    ),
    reads_summary=True,
)
def _mrr(filters: ReportFilters) -> ReportTable:
    rows = selectors.mrr_movements(filters=filters)
    currency = _chart_currency(rows, filters)
    shown = [row for row in rows if row.currency == currency]
    labels = [_month_label(row.month) for row in shown]
    charts = (
        line_chart(
            title=_("MRR (%(currency)s)") % {"currency": currency},
            labels=labels,
            series=[Series(str(_("MRR")), [_major(row.mrr) for row in shown])],
            x_label=MONTH_AXIS,
            y_label=_amount_axis(currency),
            unit=MONEY_UNIT,
            currency=currency,
        ),
        bar_chart(
            title=_("MRR movements (%(currency)s)") % {"currency": currency},
            labels=labels,
            x_label=MONTH_AXIS,
            y_label=_amount_axis(currency),
            unit=MONEY_UNIT,
            currency=currency,
            series=[
                Series(str(_("new")), [_major(row.new) for row in shown], "#2e9e5b"),
                Series(str(_("expansion")), [_major(row.expansion) for row in shown], "#2851a3"),
                Series(str(_("reactivation")), [_major(row.reactivation) for row in shown], "#16a085"),
                Series(str(_("contraction")), [_major(row.contraction) for row in shown], "#f0a202"),
                Series(str(_("churn")), [_major(row.churn) for row in shown], "#c0392b"),
            ],
            lines=[Series(str(_("net new MRR")), [_major(row.net_new) for row in shown], "#333333")],
        ),
    )
    return ReportTable(
        columns=(
            Column("month", _("month"), MONTH),
            Column("currency", _("currency"), on_screen=False),
            Column("start_mrr", _("MRR at start"), MONEY),
            Column("new", _("new"), MONEY),
            Column("expansion", _("expansion"), MONEY),
            Column("contraction", _("contraction"), MONEY),
            Column("churn", _("churn"), MONEY),
            Column("reactivation", _("reactivation"), MONEY),
            Column("net_new", _("net new MRR"), MONEY),
            Column("mrr", _("MRR"), MONEY),
            Column("arr", _("ARR"), MONEY, on_screen=False),
            Column("customers", _("paying customers"), INT),
            Column("new_customers", _("new customers"), INT),
            Column("churned_customers", _("churned customers"), INT),
            Column("reactivated_customers", _("reactivated customers"), INT, on_screen=False),
        ),
        rows=[
            {
                "month": row.month,
                "currency": row.currency,
                "start_mrr": row.start_mrr,
                "new": row.new,
                "expansion": row.expansion,
                "contraction": row.contraction,
                "churn": row.churn,
                "reactivation": row.reactivation,
                "net_new": row.net_new,
                "mrr": row.mrr,
                "arr": row.arr,
                "customers": row.customers,
                "new_customers": row.new_customers,
                "churned_customers": row.churned_customers,
                "reactivated_customers": row.reactivated_customers,
            }
            for row in rows
        ],
        charts=charts,
        notes=_currency_note(rows, currency),
        headlines=(
            Headline(_("MRR"), shown[-1].mrr, MONEY, currency),
            Headline(_("ARR"), shown[-1].arr, MONEY, currency),
            Headline(_("net new MRR in the period"), _sum(shown, "net_new"), MONEY, currency),
            Headline(_("paying customers"), shown[-1].customers),
        )
        if shown
        else (),
    )


def _percent(rate: Fraction | None) -> float | None:
    return None if rate is None else float(rate * 100)


@report(
    "retention",
    _("Churn and net revenue retention"),
    _(
        "Customer churn rate (customers lost / customers at the month's start), revenue churn rate "
        "((churn + contraction) / MRR at the start) and net revenue retention "
        "((MRR at the start + expansion - contraction - churn) / MRR at the start), month by month."
    ),
    reads_summary=True,
)
def _retention(filters: ReportFilters) -> ReportTable:
    rows = selectors.retention(filters=filters)
    currency = _chart_currency(rows, filters)
    shown = [row for row in rows if row.currency == currency]
    labels = [_month_label(row.month) for row in shown]
    return ReportTable(
        columns=(
            Column("month", _("month"), MONTH),
            Column("currency", _("currency"), on_screen=False),
            Column("start_customers", _("customers at start"), INT),
            Column("churned_customers", _("churned customers"), INT),
            Column("start_mrr", _("MRR at start"), MONEY),
            Column("customer_churn_rate", _("customer churn rate"), RATE),
            Column("revenue_churn_rate", _("revenue churn rate"), RATE),
            Column("net_revenue_retention", _("net revenue retention"), RATE),
        ),
        rows=[
            {
                "month": row.month,
                "currency": row.currency,
                "start_customers": row.start_customers,
                "churned_customers": row.churned_customers,
                "start_mrr": row.start_mrr,
                "customer_churn_rate": row.customer_churn_rate,
                "revenue_churn_rate": row.revenue_churn_rate,
                "net_revenue_retention": row.net_revenue_retention,
            }
            for row in rows
        ],
        headlines=(
            Headline(
                _("customer churn, %(month)s") % {"month": date_format(shown[-1].month, "YEAR_MONTH_FORMAT")},
                shown[-1].customer_churn_rate,
                RATE,
            ),
            Headline(_("revenue churn"), shown[-1].revenue_churn_rate, RATE),
            Headline(_("net revenue retention"), shown[-1].net_revenue_retention, RATE),
            Headline(_("MRR at start"), shown[-1].start_mrr, MONEY, currency),
        )
        if shown
        else (),
        charts=(
            line_chart(
                title=_("Churn rates (%)"),
                labels=labels,
                x_label=MONTH_AXIS,
                y_label=_("rate (%)"),
                unit=PERCENT,
                series=[
                    Series(str(_("customer churn rate")), [_percent(row.customer_churn_rate) for row in shown]),
                    Series(str(_("revenue churn rate")), [_percent(row.revenue_churn_rate) for row in shown]),
                ],
            ),
            line_chart(
                title=_("Net revenue retention (%)"),
                labels=labels,
                x_label=MONTH_AXIS,
                y_label=_("rate (%)"),
                unit=PERCENT,
                series=[
                    Series(str(_("net revenue retention")), [_percent(row.net_revenue_retention) for row in shown])
                ],
            ),
        ),
        notes=_currency_note(rows, currency),
    )


@report(
    "cohorts",
    _("Cohort retention"),
    _(
        "Customers grouped by the month they started paying (new in the period); for each month after, how many "
        "still pay and the share of their starting MRR they pay."
    ),
    reads_summary=True,
)
def _cohorts(filters: ReportFilters) -> ReportTable:
    rows = selectors.cohorts(filters=filters)
    width = filters.month_count
    columns = [
        Column("cohort", _("cohort"), MONTH),
        Column("currency", _("currency"), on_screen=False),
        Column("customers", _("customers"), INT),
        Column("starting_mrr", _("starting MRR"), MONEY),
    ]
    columns += [Column(f"month_{age}", _("month %(age)d") % {"age": age}, RATE) for age in range(width)]
    # The page shows the heat-map of customers still paying; the MRR per month is in the exports.
    columns += [
        Column(f"mrr_{age}", _("MRR month %(age)d") % {"age": age}, MONEY, on_screen=False) for age in range(width)
    ]
    table_rows = []
    for row in rows:
        cells: dict[str, Any] = {
            "cohort": row.cohort,
            "currency": row.currency,
            "customers": row.customers,
            "starting_mrr": row.starting_mrr,
        }
        for age in range(width):
            inside = age < len(row.retained_customers)
            cells[f"month_{age}"] = (
                Fraction(row.retained_customers[age], row.customers) if inside and row.customers else None
            )
            cells[f"mrr_{age}"] = row.retained_mrr[age] if inside else None
        table_rows.append(cells)
    currency = _chart_currency(rows, filters)
    shown = [row for row in rows if row.currency == currency]
    return ReportTable(
        columns=tuple(columns),
        rows=table_rows,
        notes=(_("Each cell: share of the cohort still paying that month; the darker, the more retained."),),
        headlines=(
            Headline(_("cohorts"), len(shown)),
            Headline(_("customers in the cohorts"), _sum(shown, "customers")),
            Headline(_("starting MRR"), _sum(shown, "starting_mrr"), MONEY, currency),
        )
        if shown
        else (),
        charts=(
            line_chart(
                title=_("Customers still paying, by cohort (%)"),
                labels=[str(_("month %(age)d") % {"age": age}) for age in range(width)],
                series=[
                    Series(
                        _month_label(row.cohort),
                        [
                            100 * row.retained_customers[age] / row.customers
                            if age < len(row.retained_customers) and row.customers
                            else None
                            for age in range(width)
                        ],
                    )
                    for row in shown[-8:]
                ],
                x_label=_("months since the cohort started"),
                y_label=_("customers still paying (%)"),
                unit=PERCENT,
                y_min=0,
                y_max=100,
            ),
        )
        if shown
        else (),
    )


@report(
    "revenue-recognition",
    _("Revenue recognition"),
    _(
        "Plans billed in advance: invoiced (excluding tax, net of discounts), recognized straight-line over the "
        "months of their service period, and deferred revenue at each month's end."
    ),
    summary=selectors.RECOGNITION,
)
def _recognition(filters: ReportFilters) -> ReportTable:
    rows = selectors.revenue_recognition(filters=filters)
    currency = _chart_currency(rows, filters)
    shown = [row for row in rows if row.currency == currency]
    labels = [_month_label(row.month) for row in shown]
    return ReportTable(
        columns=(
            Column("month", _("month"), MONTH),
            Column("currency", _("currency")),
            Column("invoiced", _("invoiced"), MONEY),
            Column("recognized", _("recognized"), MONEY),
            Column("deferred", _("deferred at month end"), MONEY),
        ),
        rows=[
            {
                "month": row.month,
                "currency": row.currency,
                "invoiced": row.invoiced,
                "recognized": row.recognized,
                "deferred": row.deferred,
            }
            for row in rows
        ],
        charts=(
            bar_chart(
                title=_("Recognized and deferred revenue (%(currency)s)") % {"currency": currency},
                labels=labels,
                x_label=MONTH_AXIS,
                y_label=_amount_axis(currency),
                unit=MONEY_UNIT,
                currency=currency,
                series=[
                    Series(str(_("invoiced")), [_major(row.invoiced) for row in shown], "#7f8c8d"),
                    Series(str(_("recognized")), [_major(row.recognized) for row in shown], "#2e9e5b"),
                ],
                stacked=False,
                lines=[Series(str(_("deferred at month end")), [_major(row.deferred) for row in shown], "#2851a3")],
            ),
        ),
        notes=_currency_note(rows, currency),
        headlines=(
            Headline(_("invoiced"), _sum(shown, "invoiced"), MONEY, currency),
            Headline(_("recognized"), _sum(shown, "recognized"), MONEY, currency),
            Headline(_("deferred at the end"), shown[-1].deferred, MONEY, currency),
        )
        if shown
        else (),
    )


@report(
    "billed",
    _("Billed revenue by kind"),
    _(
        "What issued invoices billed, by month of issue: subscriptions, usage, prorations and one-off charges "
        "(excluding tax, net of discounts), tax, and the invoices' totals, which these add up to."
    ),
    summary=selectors.BILLED,
)
def _billed(filters: ReportFilters) -> ReportTable:
    rows = selectors.billed_by_kind(filters=filters)
    currency = _chart_currency(rows, filters)
    shown = [row for row in rows if row.currency == currency]
    labels = [_month_label(row.month) for row in shown]
    kinds = (
        ("subscription", _("subscriptions")),
        ("usage", _("usage")),
        ("proration", _("prorations")),
        ("one_off", _("one-off")),
    )
    return ReportTable(
        columns=(
            Column("month", _("month"), MONTH),
            Column("currency", _("currency")),
            *(Column(key, label, MONEY) for key, label in kinds),
            Column("excluding_tax", _("total excluding tax"), MONEY),
            Column("tax", _("tax"), MONEY),
            Column("total", _("invoice totals"), MONEY),
        ),
        rows=[
            {
                "month": row.month,
                "currency": row.currency,
                **{key: getattr(row, key) for key, _label in kinds},
                "excluding_tax": row.excluding_tax,
                "tax": row.tax,
                "total": row.total,
            }
            for row in rows
        ],
        charts=(
            bar_chart(
                title=_("Billed by kind (%(currency)s)") % {"currency": currency},
                labels=labels,
                series=[Series(str(label), [_major(getattr(row, key)) for row in shown]) for key, label in kinds],
                x_label=MONTH_AXIS,
                y_label=_amount_axis(currency),
                unit=MONEY_UNIT,
                currency=currency,
            ),
        ),
        notes=_currency_note(rows, currency),
        headlines=(
            Headline(_("invoice totals"), _sum(shown, "total"), MONEY, currency),
            Headline(_("total excluding tax"), _sum(shown, "excluding_tax"), MONEY, currency),
            Headline(_("tax"), _sum(shown, "tax"), MONEY, currency),
        )
        if shown
        else (),
    )


@report(
    "ar-aging",
    _("Accounts receivable aging"),
    _(
        "What customers owe at the end of the period (or now), by days past the due date. Written-off "
        "(uncollectible) and voided invoices are not receivables."
    ),
    summary=selectors.RECEIVABLES,
)
def _aging(filters: ReportFilters) -> ReportTable:
    rows = selectors.ar_aging(filters=filters)
    currency = _chart_currency(rows, filters)
    shown = [row for row in rows if row.currency == currency]
    labels = {
        "current": _("current"),
        "1-30": _("1-30 days"),
        "31-60": _("31-60 days"),
        "61-90": _("61-90 days"),
        "90+": _("over 90 days"),
    }
    return ReportTable(
        columns=(
            Column("bucket", _("days past due")),
            Column("currency", _("currency")),
            Column("invoices", _("invoices"), INT),
            Column("amount", _("amount owed"), MONEY),
        ),
        rows=[
            {
                "bucket": str(labels[row.bucket]),
                "currency": row.currency,
                "invoices": row.invoices,
                "amount": row.amount,
            }
            for row in rows
        ],
        charts=(
            bar_chart(
                title=_("Receivables by age (%(currency)s)") % {"currency": currency},
                labels=[str(labels[row.bucket]) for row in shown],
                series=[Series(str(_("amount owed")), [_major(row.amount) for row in shown], "#c0392b")],
                x_label=_("days past due"),
                y_label=_amount_axis(currency),
                unit=MONEY_UNIT,
                currency=currency,
            ),
        ),
        notes=_currency_note(rows, currency),
        headlines=(
            Headline(_("amount owed"), _sum(shown, "amount"), MONEY, currency),
            Headline(_("past due"), sum(row.amount or 0 for row in shown if row.bucket != "current"), MONEY, currency),
            Headline(_("open invoices"), _sum(shown, "invoices")),
        )
        if shown
        else (),
    )


@report(
    "dso",
    _("Days sales outstanding"),
    _("Receivables at the end of the period ÷ invoice totals issued in the period × days in the period."),
    summary=selectors.RECEIVABLES,
)
def _dso(filters: ReportFilters) -> ReportTable:
    rows = selectors.days_sales_outstanding(filters=filters)
    return ReportTable(
        columns=(
            Column("currency", _("currency")),
            Column("receivables", _("receivables"), MONEY),
            Column("billed", _("billed in the period"), MONEY),
            Column("days", _("days"), INT),
            Column("dso", _("DSO (days)"), DECIMAL),
        ),
        rows=[
            {
                "currency": row.currency,
                "receivables": row.receivables,
                "billed": row.billed,
                "days": row.days,
                "dso": row.dso,
            }
            for row in rows
        ],
        charts=(
            bar_chart(
                title=_("DSO (days)"),
                labels=[row.currency for row in rows],
                series=[Series(str(_("DSO (days)")), [float(row.dso) if row.dso is not None else 0 for row in rows])],
                x_label=_("currency"),
                y_label=_("days"),
                unit=DAYS,
            ),
        )
        if rows
        else (),
        headlines=tuple(
            headline
            for row in rows[:2]
            for headline in (
                Headline(_("DSO (%(currency)s, days)") % {"currency": row.currency}, row.dso, DECIMAL),
                Headline(_("receivables"), row.receivables, MONEY, row.currency),
            )
        ),
    )


@report(
    "invoices-by-status",
    _("Invoices by status"),
    _("Invoices created in the period, by status."),
    summary=selectors.INVOICE_STATUS,
)
def _by_status(filters: ReportFilters) -> ReportTable:
    rows = selectors.invoices_by_status(filters=filters)
    return ReportTable(
        columns=(
            Column("status", _("status")),
            Column("currency", _("currency")),
            Column("invoices", _("invoices"), INT),
            Column("total", _("total"), MONEY),
            Column("amount_remaining", _("remaining to pay"), MONEY),
        ),
        rows=[
            {
                "status": row.status,
                "currency": row.currency,
                "invoices": row.invoices,
                "total": row.total,
                "amount_remaining": row.amount_remaining,
            }
            for row in rows
        ],
        charts=(
            bar_chart(
                title=_("Invoices by status"),
                labels=[f"{row.status} {row.currency}" for row in rows],
                series=[Series(str(_("invoices")), [row.invoices for row in rows])],
                x_label=_("status"),
                y_label=_("invoices"),
            ),
        ),
        headlines=(
            Headline(_("invoices"), _sum(rows, "invoices")),
            *(
                Headline(_("remaining to pay"), _sum(same, "amount_remaining"), MONEY, currency)
                for currency in sorted({row.currency for row in rows})[:2]
                for same in [[row for row in rows if row.currency == currency]]
            ),
        )
        if rows
        else (),
    )


@report(
    "payments",
    _("Payment success rate"),
    _("Payment attempts in the period by method and gateway; the rate counts settled attempts (succeeded or failed)."),
    summary=selectors.PAYMENTS,
)
def _payments(filters: ReportFilters) -> ReportTable:
    rows = selectors.payment_success(filters=filters)
    return ReportTable(
        columns=(
            Column("method", _("method")),
            Column("gateway", _("gateway")),
            Column("currency", _("currency")),
            Column("attempts", _("attempts"), INT),
            Column("succeeded", _("succeeded"), INT),
            Column("failed", _("failed"), INT),
            Column("success_rate", _("success rate"), RATE),
            Column("amount_succeeded", _("collected"), MONEY),
        ),
        rows=[
            {
                "method": row.method,
                "gateway": row.gateway,
                "currency": row.currency,
                "attempts": row.attempts,
                "succeeded": row.succeeded,
                "failed": row.failed,
                "success_rate": row.success_rate,
                "amount_succeeded": row.amount_succeeded,
            }
            for row in rows
        ],
        charts=(
            bar_chart(
                title=_("Success rate (%)"),
                labels=[f"{row.method}/{row.gateway}" for row in rows],
                series=[Series(str(_("success rate")), [_percent(row.success_rate) or 0 for row in rows], "#2e9e5b")],
                x_label=_("method / gateway"),
                y_label=_("success rate (%)"),
                unit=PERCENT,
                y_min=0,
                y_max=100,
            ),
        ),
        headlines=_payment_headlines(rows),
    )


def _payment_headlines(rows: Sequence[Any]) -> tuple[Headline, ...]:
    if not rows:
        return ()
    succeeded, failed = _sum(rows, "succeeded"), _sum(rows, "failed")
    currency = sorted({row.currency for row in rows})[0]
    return (
        Headline(_("attempts"), _sum(rows, "attempts")),
        Headline(_("success rate"), Fraction(succeeded, succeeded + failed) if succeeded + failed else None, RATE),
        Headline(
            _("collected"),
            _sum([row for row in rows if row.currency == currency], "amount_succeeded"),
            MONEY,
            currency,
        ),
    )


@report(
    "declines",
    _("Decline reasons"),
    _("Failed payment attempts in the period by decline code and method."),
    summary=selectors.PAYMENTS,
)
def _declines(filters: ReportFilters) -> ReportTable:
    rows = selectors.decline_reasons(filters=filters)
    return ReportTable(
        columns=(
            Column("decline_code", _("decline code")),
            Column("method", _("method")),
            Column("currency", _("currency")),
            Column("failures", _("failures"), INT),
            Column("amount", _("amount declined"), MONEY),
        ),
        rows=[
            {
                "decline_code": row.decline_code,
                "method": row.method,
                "currency": row.currency,
                "failures": row.failures,
                "amount": row.amount,
            }
            for row in rows
        ],
        charts=(
            bar_chart(
                title=_("Failures by decline code"),
                labels=[row.decline_code for row in rows[:20]],
                series=[Series(str(_("failures")), [row.failures for row in rows[:20]], "#c0392b")],
                x_label=_("decline code"),
                y_label=_("failures"),
            ),
        ),
        headlines=(
            Headline(_("failures"), _sum(rows, "failures")),
            Headline(_("decline codes"), len({row.decline_code for row in rows})),
            *(
                Headline(_("amount declined"), _sum(same, "amount"), MONEY, currency)
                for currency in sorted({row.currency for row in rows})[:2]
                for same in [[row for row in rows if row.currency == currency]]
            ),
        )
        if rows
        else (),
    )


def _days(duration: timedelta | None) -> float | None:
    return None if duration is None else duration.total_seconds() / 86400


@report(
    "dunning",
    _("Dunning recovery"),
    _(
        "Dunning cases opened in the period: recovery rate (recovered ÷ recovered or given up) and time from the "
        "first failure to the recovering payment."
    ),
)
def _dunning(filters: ReportFilters) -> ReportTable:
    rows = selectors.dunning_recovery(filters=filters)
    return ReportTable(
        columns=(
            Column("currency", _("currency")),
            Column("cases", _("cases"), INT),
            Column("recovered", _("recovered"), INT),
            Column("exhausted", _("given up"), INT),
            Column("closed", _("closed otherwise"), INT),
            Column("active", _("still retrying"), INT),
            Column("recovery_rate", _("recovery rate"), RATE),
            Column("recovered_amount", _("recovered amount"), MONEY),
            Column("average_time_to_recover", _("average time to recover"), DURATION),
            Column("longest_time_to_recover", _("longest time to recover"), DURATION),
        ),
        rows=[
            {
                "currency": row.currency,
                "cases": row.cases,
                "recovered": row.recovered,
                "exhausted": row.exhausted,
                "closed": row.closed,
                "active": row.active,
                "recovery_rate": row.recovery_rate,
                "recovered_amount": row.recovered_amount,
                "average_time_to_recover": row.average_time_to_recover,
                "longest_time_to_recover": row.longest_time_to_recover,
            }
            for row in rows
        ],
        charts=(
            bar_chart(
                title=_("Dunning outcomes"),
                labels=[row.currency for row in rows],
                series=[
                    Series(str(_("recovered")), [row.recovered for row in rows], "#2e9e5b"),
                    Series(str(_("given up")), [row.exhausted for row in rows], "#c0392b"),
                    Series(str(_("closed otherwise")), [row.closed for row in rows], "#7f8c8d"),
                    Series(str(_("still retrying")), [row.active for row in rows], "#f0a202"),
                ],
                x_label=_("currency"),
                y_label=_("cases"),
            ),
        )
        if rows
        else (),
        headlines=_dunning_headlines(rows),
    )


def _dunning_headlines(rows: Sequence[Any]) -> tuple[Headline, ...]:
    if not rows:
        return ()
    recovered, exhausted = _sum(rows, "recovered"), _sum(rows, "exhausted")
    currency = sorted({row.currency for row in rows})[0]
    return (
        Headline(_("cases"), _sum(rows, "cases")),
        Headline(
            _("recovery rate"), Fraction(recovered, recovered + exhausted) if recovered + exhausted else None, RATE
        ),
        Headline(
            _("recovered amount"),
            _sum([row for row in rows if row.currency == currency], "recovered_amount"),
            MONEY,
            currency,
        ),
    )


USAGE_COLUMNS = (
    Column("meter", _("meter")),
    Column("customer_id", _("customer id"), INT, on_screen=False),
    Column("customer", _("customer")),
    Column("events", _("events"), INT),
    Column("total", _("total reported"), DECIMAL),
    Column("peak", _("largest value"), DECIMAL),
)


def _usage_dict(row: Any) -> dict[str, Any]:
    return {
        "meter_id": row.meter_id,
        "meter": row.meter,
        "customer_id": row.customer_id,
        "customer": row.customer,
        "events": row.events,
        "total": row.total,
        "peak": row.peak,
    }


def _usage_full_list(filters: ReportFilters) -> FullList:
    def stream() -> Iterator[dict[str, Any]]:
        with use_replica():  # the files stream after the view returned: their own replica block
            for row in selectors.usage_by_meter_stream(filters=filters):
                yield _usage_dict(row)

    def page(after: tuple[int, int] | None, limit: int) -> list[dict[str, Any]]:
        with use_replica():
            return [
                _usage_dict(row) for row in selectors.usage_by_meter_page(filters=filters, after=after, limit=limit)
            ]

    return FullList(
        columns=USAGE_COLUMNS,
        stream=stream,
        page=page,
        key=lambda row: (row["meter_id"], row["customer_id"]),
        note=_(
            "Each meter's total, then its %(top)s customers with the largest totals. The CSV and XLSX "
            "exports and the API list every customer."
        )
        % {"top": selectors.USAGE_TOP_CUSTOMERS},
    )


@report(
    "usage",
    _("Usage per meter and customer"),
    _(
        "Usage events reported in the period: each meter's totals and its largest customers on the page, "
        "every customer in the exports and the API."
    ),
    summary=selectors.USAGE_DIGEST,
)
def _usage(filters: ReportFilters) -> ReportTable:
    # The preset periods without filters: the digest's last refresh (reports/usage_digest.py).
    overview = selectors.usage_digest_overview(filters=filters) or selectors.usage_overview(filters=filters)
    rows: list[dict[str, Any]] = []
    top_by_meter: dict[int, list[Any]] = {}
    for row in overview.top:
        top_by_meter.setdefault(row.meter_id, []).append(row)
    for meter in overview.meters:
        rows.append(
            {
                "meter": meter.meter,
                "rank": None,
                "customer": _("All customers"),
                "customers": meter.customers,
                "events": meter.events,
                "total": meter.total,
                "peak": meter.peak,
            }
        )
        rows += [
            {**_usage_dict(row), "rank": rank, "customers": None}
            for rank, row in enumerate(top_by_meter.get(meter.meter_id, []), start=1)
        ]
    first_top = top_by_meter.get(overview.meters[0].meter_id, []) if overview.meters else []
    charts = []
    if len(overview.meters) > 1:
        charts.append(
            bar_chart(
                title=_("Total reported per meter"),
                labels=[meter.meter[:24] for meter in overview.meters],
                series=[Series(str(_("total reported")), [float(meter.total or 0) for meter in overview.meters])],
                x_label=str(_("meter")),
                y_label=str(_("total reported")),
            )
        )
    if first_top:
        charts.append(
            bar_chart(
                title=_("Top customers by usage: %(meter)s") % {"meter": overview.meters[0].meter},
                labels=[row.customer[:14] for row in first_top[:15]],
                series=[Series(str(_("total reported")), [float(row.total or 0) for row in first_top[:15]])],
                x_label=str(_("customer")),
                y_label=str(_("total reported")),
            )
        )
    return ReportTable(
        columns=(
            Column("meter", _("meter")),
            Column("rank", _("rank"), INT),
            Column("customer", _("customer")),
            Column("customers", _("customers"), INT),
            Column("events", _("events"), INT),
            Column("total", _("total reported"), DECIMAL),
            Column("peak", _("largest value"), DECIMAL),
        ),
        rows=rows,
        charts=tuple(charts),
        headlines=(
            Headline(_("usage events"), sum(meter.events for meter in overview.meters)),
            Headline(_("meters"), len(overview.meters)),
            Headline(_("customers"), overview.customers),
        )
        if overview.meters
        else (),
        full_list=_usage_full_list(filters),
    )


@report(
    "plan-changes",
    _("Plan-change history"),
    _("Customers by number of plan or quantity changes in the period, most changes first."),
    extra_filters=("min_changes",),
)
def _plan_changes(filters: ReportFilters) -> ReportTable:
    rows = selectors.plan_change_history(filters=filters, min_changes=filters.min_changes)
    return ReportTable(
        columns=(
            Column("customer_id", _("customer id"), INT, on_screen=False),
            Column("customer", _("customer")),
            Column("currency", _("currency"), on_screen=False),
            Column("changes", _("changes"), INT),
            Column("upgrades", _("upgrades"), INT),
            Column("downgrades", _("downgrades"), INT),
            Column("first_change", _("first change"), DATETIME),
            Column("last_change", _("last change"), DATETIME),
            Column("mrr_change", _("MRR change"), MONEY),
        ),
        rows=[
            {
                "customer_id": row.customer_id,
                "customer": row.customer,
                "currency": row.currency,
                "changes": row.changes,
                "upgrades": row.upgrades,
                "downgrades": row.downgrades,
                "first_change": row.first_change,
                "last_change": row.last_change,
                "mrr_change": row.mrr_change,
            }
            for row in rows
        ],
        charts=(
            bar_chart(
                title=_("Most changes"),
                labels=[row.customer[:16] for row in rows[:15]],
                series=[
                    Series(str(_("upgrades")), [row.upgrades for row in rows[:15]], "#2e9e5b"),
                    Series(str(_("downgrades")), [row.downgrades for row in rows[:15]], "#c0392b"),
                    Series(
                        str(_("same MRR")),
                        [row.changes - row.upgrades - row.downgrades for row in rows[:15]],
                        "#7f8c8d",
                    ),
                ],
                x_label=_("customer"),
                y_label=_("changes"),
            ),
        )
        if rows
        else (),
        headlines=(
            Headline(_("customers"), len(rows)),
            Headline(_("changes"), _sum(rows, "changes")),
            Headline(_("upgrades"), _sum(rows, "upgrades")),
            Headline(_("downgrades"), _sum(rows, "downgrades")),
        )
        if rows
        else (),
    )


@report(
    "customer-timeline",
    _("Customer timeline"),
    _(
        "Every event of one customer in order: subscription changes (from/to plan, MRR), invoices, payments and "
        "failures, dunning, credit notes, and the sources other apps add."
    ),
    needs_customer=True,
)
def _timeline(filters: ReportFilters) -> ReportTable:
    columns = (
        Column("at", _("when"), DATETIME),
        Column("source", _("source")),
        Column("kind", _("what")),
        Column("summary", _("summary")),
        Column("from_plan", _("from plan")),
        Column("to_plan", _("to plan")),
        Column("amount", _("amount"), MONEY),
        Column("currency", _("currency"), on_screen=False),
        Column("reference", _("reference")),
        Column("details", _("details")),
    )
    if not filters.customer:
        return ReportTable(columns=columns, rows=[], notes=(_("Choose a customer to see its timeline."),))
    entries = selectors.customer_timeline(
        customer_id=filters.customer,
        start=month_start(filters.start),
        end=month_start(add_months(filters.end, 1)),
    )
    rows = []
    for entry in entries:
        details = dict(entry.details)
        rows.append(
            {
                "at": entry.at,
                "source": entry.source,
                "kind": entry.kind,
                "summary": str(entry.summary),
                "from_plan": details.pop("from_plan", ""),
                "to_plan": details.pop("to_plan", ""),
                "amount": entry.amount,
                "currency": entry.currency or "",
                "reference": entry.reference,
                "details": ", ".join(f"{key}={value}" for key, value in details.items() if value not in ("", None)),
            }
        )
    months = [_month_label(month) for month in months_between(filters.start, filters.end)]
    sources = sorted({entry.source for entry in entries})
    per_month = {
        source: [
            sum(1 for entry in entries if entry.source == source and _month_label(_report_date(entry.at)) == month)
            for month in months
        ]
        for source in sources
    }
    return ReportTable(
        columns=columns,
        rows=rows,
        headlines=(
            Headline(_("events"), len(entries)),
            Headline(_("first"), entries[0].at, DATETIME),
            Headline(_("latest"), entries[-1].at, DATETIME),
        )
        if entries
        else (),
        charts=(
            bar_chart(
                title=_("Events per month"),
                labels=months,
                series=[Series(str(source), per_month[source]) for source in sources],
                x_label=MONTH_AXIS,
                y_label=_("events"),
            ),
        )
        if entries
        else (),
    )


def _report_date(at: datetime) -> date:
    return at.astimezone(report_timezone()).date()
