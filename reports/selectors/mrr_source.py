"""Where the MRR reports read customer-months from: the MRR summary table as it stands,
or, while it has never been built (or was cut in another time zone), the same rows
computed on the fly from the invoice lines, read-only.

The SQL that derives the rows from the invoice lines lives here once: the summary's
writer (reports/summary.py, run by the beat task and the refresh command) inserts the
very same SELECTs into the table. A read never writes: it reports how old the figures
are instead (`mrr_summary_status`, shown as "as of" on the dashboards and in the API).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings

from config import clock
from reports.filters import ReportFilters, add_months
from reports.models import MrrSummaryState
from reports.selectors.common import (
    BILLED_STATUSES,
    as_month,
    fetch,
    invoice_where,
    month_number,
    months_cte,
    price_factors_cte,
    rounded_mrr_sql,
)

SUMMARY_TABLE = "reports_customermonthmrr"
SUMMARY_COLUMNS = "customer_id, currency, brand_id, price_id, month, mrr, previous_mrr, is_first"

# The month's movements summed over customer total rows `c` of the summary (in the order of
# MONTH_TOTAL_FIGURES): the unfiltered MRR read computes them live from the summary when it
# must (a customer or country filter), and the writer keeps them per mode, currency and
# month in MONTH_TOTAL_TABLE for the reads that need no more (reports/summary.py).
MOVEMENT_SUMS = (
    "SUM(CASE WHEN c.mrr > 0 THEN 1 ELSE 0 END)",
    "SUM(c.mrr)",
    "SUM(CASE WHEN c.previous_mrr > 0 THEN 1 ELSE 0 END)",
    "SUM(c.previous_mrr)",
    "SUM(CASE WHEN c.is_first THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN c.is_first THEN c.mrr ELSE 0 END)",
    "SUM(CASE WHEN c.mrr > c.previous_mrr AND c.previous_mrr > 0 THEN c.mrr - c.previous_mrr ELSE 0 END)",
    "SUM(CASE WHEN c.mrr < c.previous_mrr AND c.mrr > 0 THEN c.mrr - c.previous_mrr ELSE 0 END)",
    "SUM(CASE WHEN c.previous_mrr = 0 AND NOT c.is_first THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN c.previous_mrr = 0 AND NOT c.is_first THEN c.mrr ELSE 0 END)",
    "SUM(CASE WHEN c.mrr = 0 THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN c.mrr = 0 THEN c.previous_mrr ELSE 0 END)",
)
MONTH_TOTAL_TABLE = "reports_mrrmonthtotal"
COHORT_TABLE = "reports_mrrcohortcell"
MONTH_TOTAL_FIGURES = (
    "customers",
    "mrr",
    "start_customers",
    "start_mrr",
    "new_customers",
    "new",
    "expansion",
    "contraction",
    "reactivated_customers",
    "reactivation",
    "churned_customers",
    "churn",
)


@dataclass(frozen=True, slots=True)
class MrrSummaryStatus:
    """How current the MRR figures are.

    `built`: the summary table holds every customer-month, cut in the current reporting
    time zone; its figures take in every invoice change committed before `refreshed_at`
    (the start of the last refresh) and none after. While it is not built, the MRR
    reports compute the same rows from the invoice lines at each read (current, slower).
    """

    built: bool
    refreshed_at: datetime | None
    timezone: str

    def as_of(self, *, now: datetime | None = None) -> datetime:
        """The instant the MRR figures describe: the last refresh, or now when computed live."""
        if self.built and self.refreshed_at is not None:
            return self.refreshed_at
        return now or clock.system_now()


def mrr_summary_status() -> MrrSummaryStatus:
    """The summary's state, read as it is (a read never creates or refreshes it)."""
    state = MrrSummaryState.objects.filter(pk=1).values("refreshed_at", "timezone").first()
    if state is None:
        return MrrSummaryStatus(built=False, refreshed_at=None, timezone="")
    built = state["refreshed_at"] is not None and state["timezone"] == settings.TARIF_REPORTS_TIMEZONE
    return MrrSummaryStatus(built=built, refreshed_at=state["refreshed_at"], timezone=state["timezone"])


BEAT_ENTRY = "reports-refresh-mrr-summary"


def next_summary_refresh(*, after: datetime, entry_name: str = BEAT_ENTRY) -> datetime | None:
    """The next run of the beat entry that refreshes a summary (config/settings/celery.py;
    default: the MRR summary's), in UTC, to the minute; None when the entry is missing or
    is not a crontab."""
    entry = getattr(settings, "CELERY_BEAT_SCHEDULE", {}).get(entry_name)
    schedule = entry and entry.get("schedule")
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


# -- The rows, as SQL shared by the writer and the live read --------------------------


def _statuses() -> str:
    return ", ".join(repr(status) for status in BILLED_STATUSES)


def subscription_line_bounds(*, scope: str, scope_params: list[Any]) -> tuple[date, date] | None:
    """First and last month touched by a billed subscription line in scope (None: no line)."""
    first, last = fetch(
        f"""
        SELECT MIN(l.period_start), MAX(l.period_end)
        FROM invoices_invoiceline l JOIN invoices_invoice i ON i.id = l.invoice_id
        WHERE l.kind = 'subscription' AND l.period_start IS NOT NULL AND i.status IN ({_statuses()}) {scope}
        """,
        scope_params,
    )[0]
    if first is None:
        return None
    return as_month(first), as_month(last)


def summary_months_cte(first_month: date, last_month: date) -> tuple[str, list[Any]]:
    """`summary_months(idx, month_start, month_end)`, idx being the month number."""
    span = (last_month.year - first_month.year) * 12 + last_month.month - first_month.month
    months = [add_months(first_month, offset) for offset in range(span + 1)]
    return months_cte("summary_months", months, first_index=month_number(first_month.year, first_month.month))


def price_rows_sql(*, scope: str) -> str:
    """Rows per customer, currency, brand, price and month (needs the CTEs `summary_months`
    and `factors`). A line for [period_start, period_end) counts in month M when
    period_start < end of M <= period_end."""
    return f"""
        SELECT i.customer_id AS customer_id, i.currency AS currency, i.brand_id AS brand_id,
               l.price_id AS price_id, m.idx AS month, SUM({rounded_mrr_sql()}) AS mrr,
               0 AS previous_mrr, FALSE AS is_first
        FROM invoices_invoiceline l
        JOIN invoices_invoice i ON i.id = l.invoice_id
        JOIN factors f ON f.price_id = l.price_id
        JOIN summary_months m ON l.period_start < m.month_end AND l.period_end >= m.month_end
        WHERE l.kind = 'subscription' AND i.status IN ({_statuses()}) {scope}
        GROUP BY i.customer_id, i.currency, i.brand_id, l.price_id, m.idx
    """


def total_ctes(*, source: str, scope: str = "") -> str:
    """`summary_totals` (each customer's MRR of a month, from the per-price rows of `source`)
    and `summary_seq` (with the customer's previous and next paying month)."""
    return f"""
        summary_totals AS (
            SELECT customer_id, currency, month, SUM(mrr) AS mrr
            FROM {source}
            WHERE price_id IS NOT NULL {scope}
            GROUP BY currency, customer_id, month
            HAVING SUM(mrr) > 0
        ),
        summary_seq AS (
            SELECT customer_id, currency, month, mrr,
                   LAG(month) OVER w AS prev_month, LAG(mrr) OVER w AS prev_mrr,
                   LEAD(month) OVER w AS next_month, ROW_NUMBER() OVER w AS position
            FROM summary_totals
            WINDOW w AS (PARTITION BY currency, customer_id ORDER BY month)
        )
    """


# The customer's total of each paying month (with the month before and whether it is the
# first), and a zero row for the month after each paying stretch (the churn).
TOTAL_ROWS_SQL = """
    SELECT customer_id, currency, CAST(NULL AS BIGINT) AS brand_id, CAST(NULL AS BIGINT) AS price_id, month, mrr,
           CASE WHEN prev_month = month - 1 THEN prev_mrr ELSE 0 END AS previous_mrr,
           CASE WHEN position = 1 THEN TRUE ELSE FALSE END AS is_first
    FROM summary_seq
    UNION ALL
    SELECT customer_id, currency, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), month + 1, 0, mrr, FALSE
    FROM summary_seq
    WHERE next_month IS NULL OR next_month > month + 1
"""


# -- What a report reads --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MrrSource:
    """The relation the MRR queries read (`FROM {relation} c`), and the CTEs (with their
    parameters, which come first) that define it when it is computed on the fly."""

    relation: str
    ctes: str = ""
    params: tuple[Any, ...] = ()

    def with_clause(self, *more: str) -> str:
        """`WITH` + the source's CTEs + the caller's (each `name AS (...)`), or nothing."""
        parts = [part for part in (self.ctes, *more) if part]
        return f"WITH {', '.join(parts)}" if parts else ""


def mrr_source(filters: ReportFilters) -> MrrSource | None:
    """The summary table when built; otherwise its rows for the filters' customers, computed
    from the invoice lines in the query itself. None: nothing to report (no line, no price)."""
    if mrr_summary_status().built:
        return MrrSource(relation=SUMMARY_TABLE)
    # Scoped to the filters' customers (mode, customer, currency, country): their totals are
    # whole. Brand and plan filters narrow the per-price rows, the only ones read then.
    where, where_params = invoice_where(filters)
    scope = f"AND {where}"
    bounds = subscription_line_bounds(scope=scope, scope_params=where_params)
    factors = price_factors_cte()
    if bounds is None or factors is None:
        return None
    months_sql, months_params = summary_months_cte(*bounds)
    ctes = (
        f"{months_sql}, {factors}, summary_prices AS ({price_rows_sql(scope=scope)}), "
        f"{total_ctes(source='summary_prices')}, "
        f"mrr_summary AS (SELECT {SUMMARY_COLUMNS} FROM summary_prices UNION ALL {TOTAL_ROWS_SQL})"
    )
    return MrrSource(relation="mrr_summary", ctes=ctes, params=(*months_params, *where_params))
