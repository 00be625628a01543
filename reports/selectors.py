"""Report figures, computed by the database (SQL aggregates and window functions).

Every query here runs unchanged on SQLite and PostgreSQL. Python only assembles the
aggregated rows (a few per month) and divides totals into rates. Definitions and the
treatment of discounts, usage, tax and refunds are in docs/reports.md.

Money is integer minor units in the row's currency; amounts in different currencies
are never added together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from django.db import connection
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, Min, Q, QuerySet, Sum

from billing.models import DunningCase, Payment, Price, SubscriptionChange, UsageEvent
from billing.selectors import cycle_spec
from invoices.models import Invoice
from reports.filters import ReportFilters, add_months, month_start, months_between, report_timezone

# Invoices that bill something: issued and not voided (uncollectible ones were billed).
BILLED_STATUSES = ("open", "paid", "uncollectible")
MOVEMENT_KINDS = ("new", "expansion", "contraction", "churn", "reactivation")

# A line's revenue excluding tax and net of its discounts (inclusive tax is inside `amount`).
LINE_NET_SQL = "(l.amount - l.discount_amount - CASE WHEN l.tax_inclusive THEN l.tax_amount ELSE 0 END)"


def _db_datetime(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
    from django.db import transaction

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One big analytic statement: JIT compilation costs seconds here and saves
            # nothing, and sorts of a million customer-months should stay in memory.
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def _months_cte(name: str, months: Sequence[date], *, first_index: int = 0) -> tuple[str, list[Any]]:
    """`name(idx, month_start, month_end)`: one row per month of the reporting calendar.

    Month indexes are literals (our own integers); the instants are parameters.
    """
    rows, params = [], []
    for offset, month in enumerate(months):
        rows.append(f"({first_index + offset}, %s, %s)")
        params += [_db_datetime(month_start(month)), _db_datetime(month_start(add_months(month, 1)))]
    return f"{name}(idx, month_start, month_end) AS (VALUES {', '.join(rows)})", params


def _price_factors_cte() -> str | None:
    """`factors(price_id, num, den)`: MRR = period amount × num / den, per recurring licensed price.

    num/den is the cycle's periods per year / 12 (Fraction, exact: a week is 1461/28 per
    year), the same normalisation as `billing.selectors.mrr_for`. Built from the catalogue
    (prices, not subscriptions), so it stays a few rows.
    """
    rows = []
    prices = Price.objects.filter(type=Price.Type.RECURRING, usage_type=Price.UsageType.LICENSED)
    for price_id, cycle in prices.values_list("pk", "cycle"):
        factor = Fraction(cycle_spec(cycle).periods_per_year()) / 12
        rows.append(f"({int(price_id)}, {factor.numerator}, {factor.denominator})")
    if not rows:
        return None
    return f"factors(price_id, num, den) AS (VALUES {', '.join(rows)})"


# Reports count one mode: live data unless the viewer is in test mode (ReportFilters.livemode).
# The clause excludes the other mode's customers (a short list in production: the test ones).
TEST_MODE_CUSTOMERS_SQL = "SELECT id FROM customers_customer WHERE livemode = %s"


def _invoice_where(filters: ReportFilters, *, invoice: str = "i", line: str | None = "l") -> tuple[str, list[Any]]:
    clauses = [
        f"{invoice}.status IN ({', '.join(repr(status) for status in BILLED_STATUSES)})",
        f"{invoice}.customer_id NOT IN ({TEST_MODE_CUSTOMERS_SQL})",
    ]
    params: list[Any] = [not filters.livemode]
    if filters.brand:
        clauses.append(f"{invoice}.brand_id = %s")
        params.append(filters.brand)
    if filters.currency:
        clauses.append(f"{invoice}.currency = %s")
        params.append(filters.currency)
    if filters.country:
        clauses.append(f"{invoice}.customer_id IN (SELECT id FROM customers_customer WHERE country = %s)")
        params.append(filters.country)
    if filters.customer:
        clauses.append(f"{invoice}.customer_id = %s")
        params.append(filters.customer)
    if filters.plan and line:
        clauses.append(f"{line}.price_id = %s")
        params.append(filters.plan)
    return " AND ".join(clauses), params


def _rounded_mrr_sql() -> str:
    # net × num / den rounded half away from zero with integer arithmetic only (both
    # databases truncate integer division toward zero), as config.money.round_fraction does.
    net = LINE_NET_SQL
    return (
        f"CASE WHEN {net} >= 0 THEN (2 * {net} * f.num + f.den) / (2 * f.den) "
        f"ELSE -((-2 * {net} * f.num + f.den) / (2 * f.den)) END"
    )


# -- MRR and its movements ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MrrMonth:
    month: date
    currency: str
    mrr: int
    customers: int
    new: int = 0
    expansion: int = 0
    contraction: int = 0  # negative
    churn: int = 0  # negative
    reactivation: int = 0
    new_customers: int = 0
    churned_customers: int = 0
    reactivated_customers: int = 0
    start_mrr: int = 0  # MRR at the end of the previous month
    start_customers: int = 0

    @property
    def arr(self) -> int:
        return self.mrr * 12

    @property
    def net_new(self) -> int:
        return self.new + self.expansion + self.contraction + self.churn + self.reactivation


def _summary_where(filters: ReportFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = [f"c.customer_id NOT IN ({TEST_MODE_CUSTOMERS_SQL})"]
    params: list[Any] = [not filters.livemode]
    if filters.brand:
        clauses.append("c.brand_id = %s")
        params.append(filters.brand)
    if filters.currency:
        clauses.append("c.currency = %s")
        params.append(filters.currency)
    if filters.plan:
        clauses.append("c.price_id = %s")
        params.append(filters.plan)
    if filters.customer:
        clauses.append("c.customer_id = %s")
        params.append(filters.customer)
    if filters.country:
        clauses.append("c.customer_id IN (SELECT id FROM customers_customer WHERE country = %s)")
        params.append(filters.country)
    return (" AND " + " AND ".join(clauses)) if clauses else "", params


def _mrr_ctes(filters: ReportFilters) -> tuple[str, list[Any], int]:
    """The CTEs the MRR reports share, over the MRR summary (reports/summary.py).

    - `live`: MRR per customer, currency and month (index 0 = the period's first month,
      -1 = the month before it, to know where each customer stood when it began). A
      subscription line for [period_start, period_end) counts in month M when
      period_start < end of M <= period_end (see docs/reports.md);
    - `seq`: each live customer-month with the customer's previous and next live month
      (window functions), from which `mrr_movements` labels it;
    - `earlier`: customers who paid before the month before the period (a return is a
      reactivation, not new business).
    """
    from reports.summary import month_number, mrr_summary_refresh

    mrr_summary_refresh()
    before = add_months(filters.start, -1)
    base = month_number(before.year, before.month) + 1  # index 0 = the period's first month
    last = month_number(filters.end.year, filters.end.month) - base
    where, where_params = _summary_where(filters)
    if filters.brand or filters.plan:
        live = f"""
        SELECT c.customer_id AS customer_id, c.currency AS currency, c.month AS month, c.month - {base} AS idx,
               SUM(c.mrr) AS mrr
        FROM reports_customermonthmrr c
        WHERE c.price_id IS NOT NULL AND c.month >= {base - 1} AND c.month <= {base + last} {where}
        GROUP BY c.currency, c.customer_id, c.month
        HAVING SUM(c.mrr) > 0
        """
        scope = "c.price_id IS NOT NULL"
    else:  # the customers' monthly totals: one row each, read in index order
        live = f"""
        SELECT c.customer_id AS customer_id, c.currency AS currency, c.month AS month, c.month - {base} AS idx,
               c.mrr AS mrr
        FROM reports_customermonthmrr c
        WHERE c.price_id IS NULL AND c.month >= {base - 1} AND c.month <= {base + last} AND c.mrr > 0 {where}
        """
        scope = "c.price_id IS NULL"
    sql = f"""
    WITH live AS ({live}),
    seq AS (
        SELECT customer_id, currency, idx, mrr,
               LAG(idx) OVER w AS prev_idx, LAG(mrr) OVER w AS prev_mrr, LEAD(idx) OVER w AS next_idx
        FROM live
        WINDOW w AS (PARTITION BY currency, customer_id ORDER BY month)
    ),
    earlier AS (
        SELECT DISTINCT c.customer_id AS customer_id, c.currency AS currency
        FROM reports_customermonthmrr c
        WHERE {scope} AND c.month < {base - 1} AND c.mrr > 0 {where}
    )
    """
    return sql, [*where_params, *where_params], last


# A live customer-month `s` followed by a gap churns in the month after its own.
_CHURNS_NEXT = "(s.next_idx IS NULL OR s.next_idx > s.idx + 1) AND s.idx < {last}"


def mrr_movements(*, filters: ReportFilters) -> list[MrrMonth]:
    """MRR, ARR and the movements that explain each month's change, per currency.

    Read from the customers' monthly totals of the MRR summary, which carry the month
    before and the first paying month: one aggregate over the period's rows. Filtering
    by brand or plan looks at part of each customer's MRR, labelled on the fly instead.
    """
    if filters.brand or filters.plan:
        return _mrr_movements_by_window(filters=filters)
    from reports.summary import month_number, mrr_summary_refresh

    mrr_summary_refresh()
    months = months_between(filters.start, filters.end)
    base = month_number(filters.start.year, filters.start.month)
    where, where_params = _summary_where(filters)
    rows = _fetch(
        f"""
        SELECT c.currency, c.month - {base},
               SUM(CASE WHEN c.mrr > 0 THEN 1 ELSE 0 END), SUM(c.mrr),
               SUM(CASE WHEN c.previous_mrr > 0 THEN 1 ELSE 0 END), SUM(c.previous_mrr),
               SUM(CASE WHEN c.is_first THEN 1 ELSE 0 END), SUM(CASE WHEN c.is_first THEN c.mrr ELSE 0 END),
               SUM(CASE WHEN c.mrr > c.previous_mrr AND c.previous_mrr > 0 THEN c.mrr - c.previous_mrr ELSE 0 END),
               SUM(CASE WHEN c.mrr < c.previous_mrr AND c.mrr > 0 THEN c.mrr - c.previous_mrr ELSE 0 END),
               SUM(CASE WHEN c.previous_mrr = 0 AND NOT c.is_first THEN 1 ELSE 0 END),
               SUM(CASE WHEN c.previous_mrr = 0 AND NOT c.is_first THEN c.mrr ELSE 0 END),
               SUM(CASE WHEN c.mrr = 0 THEN 1 ELSE 0 END), SUM(CASE WHEN c.mrr = 0 THEN c.previous_mrr ELSE 0 END)
        FROM reports_customermonthmrr c
        WHERE c.price_id IS NULL AND c.month >= {base} AND c.month <= {base + len(months) - 1} {where}
        GROUP BY c.currency, c.month
        """,
        where_params,
    )
    sums: dict[str, dict[int, tuple[int, ...]]] = defaultdict(dict)
    for currency, idx, *figures in rows:
        sums[currency][int(idx)] = tuple(int(figure or 0) for figure in figures)
    result = []
    for currency in sorted(sums):
        for idx, month in enumerate(months):
            (
                customers,
                mrr,
                start_customers,
                start_mrr,
                new_customers,
                new,
                expansion,
                contraction,
                reactivated,
                reactivation,
                churned,
                churn,
            ) = sums[currency].get(idx, (0,) * 12)
            result.append(
                MrrMonth(
                    month=month,
                    currency=currency,
                    mrr=mrr,
                    customers=customers,
                    new=new,
                    expansion=expansion,
                    contraction=contraction,
                    churn=-churn,
                    reactivation=reactivation,
                    new_customers=new_customers,
                    churned_customers=churned,
                    reactivated_customers=reactivated,
                    start_mrr=start_mrr,
                    start_customers=start_customers,
                )
            )
    return result


def _mrr_movements_by_window(*, filters: ReportFilters) -> list[MrrMonth]:
    """Movements of a part of each customer's MRR (a brand, a plan): window functions over
    the customer-months of that part, each labelled and summed into its month; the churn
    of a customer's last live month before a gap is summed there and moved to the month after.
    """
    months = months_between(filters.start, filters.end)
    sql, params, last = _mrr_ctes(filters)
    churns = _CHURNS_NEXT.format(last=last)
    # Numbers rather than labels: `step` is the change against a previous month that was
    # live (0 if there was none), `fresh` says new business; the rest of the rows without
    # a live previous month are reactivations.
    labelled = f"""
        , labelled AS (
            SELECT s.currency AS currency, s.idx AS idx, s.mrr AS mrr,
                   CASE WHEN s.prev_idx = s.idx - 1 THEN 1 ELSE 0 END AS continued,
                   CASE WHEN s.prev_idx = s.idx - 1 THEN s.mrr - s.prev_mrr ELSE 0 END AS step,
                   CASE WHEN s.prev_idx IS NULL AND e.customer_id IS NULL THEN 1 ELSE 0 END AS fresh,
                   CASE WHEN {churns} THEN 1 ELSE 0 END AS churns_next
            FROM seq s LEFT JOIN earlier e ON e.customer_id = s.customer_id AND e.currency = s.currency
        )
        SELECT currency, idx, COUNT(*), SUM(mrr),
               SUM(fresh), SUM(fresh * mrr),
               SUM(CASE WHEN step > 0 THEN step ELSE 0 END), SUM(CASE WHEN step < 0 THEN step ELSE 0 END),
               SUM(1 - continued - fresh), SUM((1 - continued - fresh) * mrr),
               SUM(churns_next), SUM(churns_next * mrr)
        FROM labelled
        GROUP BY currency, idx
    """
    sums: dict[str, dict[int, tuple[int, ...]]] = defaultdict(dict)
    for currency, idx, *figures in _fetch(sql + labelled, params):
        sums[currency][int(idx)] = tuple(int(figure or 0) for figure in figures)
    empty = (0,) * 10
    result = []
    for currency in sorted(sums):
        for idx, month in enumerate(months):
            (customers, mrr, new_customers, new, expansion, contraction, reactivated, reactivation, *_churn) = sums[
                currency
            ].get(idx, empty)
            previous = sums[currency].get(idx - 1, empty)
            result.append(
                MrrMonth(
                    month=month,
                    currency=currency,
                    mrr=mrr,
                    customers=customers,
                    new=new,
                    expansion=expansion,
                    contraction=contraction,
                    churn=-previous[9],
                    reactivation=reactivation,
                    new_customers=new_customers,
                    churned_customers=previous[8],
                    reactivated_customers=reactivated,
                    start_mrr=previous[1],
                    start_customers=previous[0],
                )
            )
    return result


@dataclass(frozen=True, slots=True)
class RetentionMonth:
    month: date
    currency: str
    start_customers: int
    churned_customers: int
    start_mrr: int
    customer_churn_rate: Fraction | None  # churned customers / customers at the start
    revenue_churn_rate: Fraction | None  # (churn + contraction) / MRR at the start
    net_revenue_retention: Fraction | None  # (start + expansion + contraction + churn) / start


def retention(*, filters: ReportFilters) -> list[RetentionMonth]:
    """Monthly churn rates and net revenue retention, from the MRR movements."""
    result = []
    for row in mrr_movements(filters=filters):
        start_mrr = row.start_mrr
        result.append(
            RetentionMonth(
                month=row.month,
                currency=row.currency,
                start_customers=row.start_customers,
                churned_customers=row.churned_customers,
                start_mrr=start_mrr,
                customer_churn_rate=Fraction(row.churned_customers, row.start_customers)
                if row.start_customers
                else None,
                revenue_churn_rate=Fraction(-(row.churn + row.contraction), start_mrr) if start_mrr else None,
                net_revenue_retention=Fraction(start_mrr + row.expansion + row.contraction + row.churn, start_mrr)
                if start_mrr
                else None,
            )
        )
    return result


@dataclass(frozen=True, slots=True)
class CohortRow:
    cohort: date  # the month the customers first had MRR
    currency: str
    customers: int  # at the start
    starting_mrr: int
    retained_customers: tuple[int, ...]  # month 0, 1, 2... after the start (up to the period end)
    retained_mrr: tuple[int, ...]


def cohorts(*, filters: ReportFilters) -> list[CohortRow]:
    """Customers grouped by the month they started paying (new business in the period)."""
    if filters.brand or filters.plan:
        sql, params, _last = _mrr_ctes(filters)
        sql += """
        , starts AS (
            SELECT s.customer_id AS customer_id, s.currency AS currency, s.idx AS cohort
            FROM seq s LEFT JOIN earlier e ON e.customer_id = s.customer_id AND e.currency = s.currency
            WHERE s.idx >= 0 AND s.prev_idx IS NULL AND e.customer_id IS NULL
        )
        SELECT s.currency, s.cohort, l.idx - s.cohort AS age, COUNT(*), SUM(l.mrr)
        FROM starts s JOIN live l ON l.customer_id = s.customer_id AND l.currency = s.currency AND l.idx >= s.cohort
        GROUP BY s.currency, s.cohort, l.idx - s.cohort
        """
    else:  # the customers' monthly totals know each customer's first paying month
        from reports.summary import month_number, mrr_summary_refresh

        mrr_summary_refresh()
        base = month_number(filters.start.year, filters.start.month)
        final = base + filters.month_count - 1
        where, params = _summary_where(filters)
        sql = f"""
        WITH starts AS (
            SELECT c.customer_id AS customer_id, c.currency AS currency, c.month AS cohort
            FROM reports_customermonthmrr c
            WHERE c.price_id IS NULL AND c.is_first AND c.month >= {base} AND c.month <= {final} {where}
        )
        SELECT s.currency, s.cohort - {base}, l.month - s.cohort, COUNT(*), SUM(l.mrr)
        FROM starts s
        JOIN reports_customermonthmrr l
          ON l.customer_id = s.customer_id AND l.currency = s.currency AND l.price_id IS NULL
         AND l.month >= s.cohort AND l.month <= {final} AND l.mrr > 0
        GROUP BY s.currency, s.cohort, l.month - s.cohort
        """
    rows = _fetch(sql, params)
    months = months_between(filters.start, filters.end)
    cells: dict[tuple[str, int], dict[int, tuple[int, int]]] = defaultdict(dict)
    for currency, cohort, age, count, amount in rows:
        cells[(currency, int(cohort))][int(age)] = (int(count), int(amount or 0))
    result = []
    for (currency, cohort), ages in sorted(cells.items()):
        span = range(len(months) - cohort)
        result.append(
            CohortRow(
                cohort=months[cohort],
                currency=currency,
                customers=ages.get(0, (0, 0))[0],
                starting_mrr=ages.get(0, (0, 0))[1],
                retained_customers=tuple(ages.get(age, (0, 0))[0] for age in span),
                retained_mrr=tuple(ages.get(age, (0, 0))[1] for age in span),
            )
        )
    return result


# -- Revenue recognition --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecognitionMonth:
    month: date
    currency: str
    invoiced: int  # subscription lines (billed in advance) of invoices finalized this month, excluding tax
    recognized: int
    deferred: int  # at the end of the month: invoiced so far minus recognized so far


def revenue_recognition(*, filters: ReportFilters) -> list[RecognitionMonth]:
    """Recognized and deferred revenue of plans billed in advance, month by month.

    A subscription line whose service period contains n month ends is recognized
    straight-line over those n months, the rounding remainder in the last one, so
    the months add up exactly to the line; a line shorter than a month (no month end
    inside) is recognized in the month it starts. Deferred revenue at a month's end is
    what was invoiced by then and not yet recognized.
    """
    where, where_params = _invoice_where(filters)
    bounds = _fetch(
        f"""
        SELECT MIN(l.period_start), MAX(l.period_end), MIN(i.finalized_at), MAX(i.finalized_at)
        FROM invoices_invoiceline l JOIN invoices_invoice i ON i.id = l.invoice_id
        WHERE l.kind = 'subscription' AND l.period_start IS NOT NULL AND {where}
        """,
        where_params,
    )[0]
    window = months_between(filters.start, filters.end)
    if bounds[0] is None:
        return []
    earliest, latest = (as_month(value) for value in (min(bounds[0], bounds[2]), max(bounds[1], bounds[3])))
    calendar = months_between(min(earliest, filters.start), max(latest, filters.end))
    months_sql, months_params = _months_cte("months", calendar)
    net = LINE_NET_SQL
    rows = _fetch(
        f"""
        WITH {months_sql},
        lines AS (
            SELECT l.id AS line_id, i.currency AS currency, {net} AS net, l.period_start AS period_start,
                   l.period_end AS period_end, i.finalized_at AS finalized_at
            FROM invoices_invoiceline l JOIN invoices_invoice i ON i.id = l.invoice_id
            WHERE l.kind = 'subscription' AND l.period_start IS NOT NULL AND {where}
        ),
        spread AS (
            SELECT x.currency AS currency, m.idx AS idx, x.net AS net,
                   COUNT(*) OVER (PARTITION BY x.line_id) AS n,
                   ROW_NUMBER() OVER (PARTITION BY x.line_id ORDER BY m.idx) AS k
            FROM lines x JOIN months m ON x.period_start < m.month_end AND x.period_end >= m.month_end
        ),
        short AS (
            SELECT x.currency AS currency, m.idx AS idx, x.net AS net
            FROM lines x JOIN months m ON x.period_start >= m.month_start AND x.period_start < m.month_end
            WHERE x.period_end < m.month_end
        )
        SELECT currency, idx, 'recognized',
               SUM(net / n + CASE WHEN k = n THEN net - (net / n) * n ELSE 0 END)
        FROM spread GROUP BY currency, idx
        UNION ALL
        SELECT currency, idx, 'recognized', SUM(net) FROM short GROUP BY currency, idx
        UNION ALL
        SELECT x.currency, m.idx, 'invoiced', SUM(x.net)
        FROM lines x JOIN months m ON x.finalized_at >= m.month_start AND x.finalized_at < m.month_end
        GROUP BY x.currency, m.idx
        """,
        [*months_params, *where_params],
    )
    sums: dict[str, dict[tuple[int, str], int]] = defaultdict(lambda: defaultdict(int))
    for currency, idx, kind, amount in rows:
        sums[currency][(int(idx), kind)] += int(amount or 0)
    first_window_index = calendar.index(window[0])
    result = []
    for currency in sorted(sums):
        invoiced_so_far = recognized_so_far = 0
        for idx, month in enumerate(calendar):
            invoiced = sums[currency][(idx, "invoiced")]
            recognized = sums[currency][(idx, "recognized")]
            invoiced_so_far += invoiced
            recognized_so_far += recognized
            if first_window_index <= idx < first_window_index + len(window):
                result.append(
                    RecognitionMonth(
                        month=month,
                        currency=currency,
                        invoiced=invoiced,
                        recognized=recognized,
                        deferred=invoiced_so_far - recognized_so_far,
                    )
                )
    return result


def as_month(value: Any) -> date:
    if isinstance(value, str):  # SQLite gives aggregates of datetimes back as text
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(report_timezone()).date()
    return date(value.year, value.month, 1)


@dataclass(frozen=True, slots=True)
class BilledMonth:
    """Invoice totals of a month split by what they bill: the figures reconcile to the invoices."""

    month: date
    currency: str
    subscription: int
    usage: int
    proration: int
    one_off: int
    tax: int
    total: int  # sum of the invoices' totals

    @property
    def excluding_tax(self) -> int:
        return self.subscription + self.usage + self.proration + self.one_off


def billed_by_kind(*, filters: ReportFilters) -> list[BilledMonth]:
    """What issued invoices billed per month of finalization, by line kind, and their totals."""
    months = months_between(filters.start, filters.end)
    months_sql, months_params = _months_cte("months", months)
    where, where_params = _invoice_where(filters, line=None)
    rows = _fetch(
        f"""
        WITH {months_sql}
        SELECT i.currency, m.idx, l.kind, SUM({LINE_NET_SQL}), SUM(l.tax_amount)
        FROM invoices_invoiceline l
        JOIN invoices_invoice i ON i.id = l.invoice_id
        JOIN months m ON i.finalized_at >= m.month_start AND i.finalized_at < m.month_end
        WHERE {where}
        GROUP BY i.currency, m.idx, l.kind
        UNION ALL
        SELECT i.currency, m.idx, 'invoice_total', SUM(i.total), 0
        FROM invoices_invoice i
        JOIN months m ON i.finalized_at >= m.month_start AND i.finalized_at < m.month_end
        WHERE {where}
        GROUP BY i.currency, m.idx
        """,
        [*months_params, *where_params, *where_params],
    )
    sums: dict[str, dict[tuple[int, str], int]] = defaultdict(lambda: defaultdict(int))
    for currency, idx, kind, amount, tax in rows:
        sums[currency][(int(idx), kind)] += int(amount or 0)
        sums[currency][(int(idx), "tax")] += int(tax or 0)
    return [
        BilledMonth(
            month=month,
            currency=currency,
            subscription=sums[currency][(idx, "subscription")],
            usage=sums[currency][(idx, "usage")],
            proration=sums[currency][(idx, "proration")],
            one_off=sums[currency][(idx, "one_off")],
            tax=sums[currency][(idx, "tax")],
            total=sums[currency][(idx, "invoice_total")],
        )
        for currency in sorted(sums)
        for idx, month in enumerate(months)
    ]


# -- Receivables ----------------------------------------------------------------------

AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")


@dataclass(frozen=True, slots=True)
class AgingRow:
    currency: str
    bucket: str
    invoices: int
    amount: int


def _invoices(filters: ReportFilters) -> QuerySet[Invoice]:
    invoices = Invoice.objects.filter(customer__livemode=filters.livemode)
    if filters.brand:
        invoices = invoices.filter(brand_id=filters.brand)
    if filters.currency:
        invoices = invoices.filter(currency=filters.currency)
    if filters.country:
        invoices = invoices.filter(customer__country=filters.country)
    if filters.plan:
        invoices = invoices.filter(lines__price_id=filters.plan).distinct()
    if filters.customer:
        invoices = invoices.filter(customer_id=filters.customer)
    return invoices


def period_end_instant(filters: ReportFilters) -> datetime:
    """The end of the period (first instant after its last month), or now if that is earlier."""
    from config import clock

    return min(month_start(add_months(filters.end, 1)), clock.system_now())


def ar_aging(*, filters: ReportFilters, as_of: datetime | None = None) -> list[AgingRow]:
    """What customers owe at `as_of` (default: the period end), by days past the due date.

    An invoice counts if it was finalized by then and neither paid, voided nor written
    off by then; its amount is what remains to pay (partial payments are taken at
    their current state). Invoices without a due date are due when finalized.
    """
    from django.db.models import Case, IntegerField, Value, When
    from django.db.models.functions import Coalesce

    as_of = as_of or period_end_instant(filters)
    outstanding = (
        _invoices(filters)
        .filter(finalized_at__lte=as_of)
        .exclude(status=Invoice.Status.DRAFT)
        .filter(Q(paid_at__isnull=True) | Q(paid_at__gt=as_of))
        .filter(Q(voided_at__isnull=True) | Q(voided_at__gt=as_of))
        .exclude(status=Invoice.Status.UNCOLLECTIBLE)
        .annotate(due=Coalesce("due_at", "finalized_at"))
        .annotate(
            owed=Case(
                When(status=Invoice.Status.OPEN, then=F("amount_remaining")),
                default=F("amount_due"),
                output_field=IntegerField(),
            ),
            bucket=Case(
                When(due__gte=as_of, then=Value("current")),
                When(due__gte=as_of - timedelta(days=30), then=Value("1-30")),
                When(due__gte=as_of - timedelta(days=60), then=Value("31-60")),
                When(due__gte=as_of - timedelta(days=90), then=Value("61-90")),
                default=Value("90+"),
            ),
        )
        .filter(owed__gt=0)
        .values("currency", "bucket")
        .annotate(invoices=Count("pk"), amount=Sum("owed"))
        .order_by()
    )
    found = {(row["currency"], row["bucket"]): row for row in outstanding}
    return [
        AgingRow(
            currency=currency,
            bucket=bucket,
            invoices=found.get((currency, bucket), {}).get("invoices", 0),
            amount=int(found.get((currency, bucket), {}).get("amount", 0) or 0),
        )
        for currency in sorted({currency for currency, _bucket in found})
        for bucket in AGING_BUCKETS
    ]


@dataclass(frozen=True, slots=True)
class DsoRow:
    currency: str
    receivables: int  # outstanding at the period end
    billed: int  # invoice totals finalized in the period
    days: int  # days in the period
    dso: Fraction | None  # receivables / billed × days


def days_sales_outstanding(*, filters: ReportFilters) -> list[DsoRow]:
    as_of = period_end_instant(filters)
    begins = month_start(filters.start)
    days = max(1, (as_of - begins).days)
    receivables: dict[str, int] = defaultdict(int)
    for row in ar_aging(filters=filters, as_of=as_of):
        receivables[row.currency] += row.amount
    billed = dict(
        _invoices(filters)
        .filter(status__in=BILLED_STATUSES, finalized_at__gte=begins, finalized_at__lt=as_of)
        .values_list("currency")
        .annotate(Sum("total"))
        .order_by()
    )
    return [
        DsoRow(
            currency=currency,
            receivables=receivables.get(currency, 0),
            billed=int(billed.get(currency) or 0),
            days=days,
            dso=Fraction(receivables.get(currency, 0) * days, int(billed[currency])) if billed.get(currency) else None,
        )
        for currency in sorted(set(receivables) | set(billed))
    ]


@dataclass(frozen=True, slots=True)
class StatusRow:
    currency: str
    status: str
    invoices: int
    total: int
    amount_remaining: int


def invoices_by_status(*, filters: ReportFilters) -> list[StatusRow]:
    """Invoices issued in the period (drafts: created in it), by their status now."""
    from django.db.models.functions import Coalesce

    rows = (
        _invoices(filters)
        .annotate(dated=Coalesce("finalized_at", "created_at"))
        .filter(dated__gte=month_start(filters.start), dated__lt=month_start(add_months(filters.end, 1)))
        .values("currency", "status")
        .annotate(invoices=Count("pk"), total=Sum("total"), remaining=Sum("amount_remaining"))
        .order_by("currency", "status")
    )
    return [
        StatusRow(
            currency=row["currency"],
            status=row["status"],
            invoices=row["invoices"],
            total=int(row["total"] or 0),
            amount_remaining=int(row["remaining"] or 0),
        )
        for row in rows
    ]


# -- Payments -------------------------------------------------------------------------


def _payments(filters: ReportFilters) -> QuerySet[Payment]:
    payments = Payment.objects.filter(
        customer__livemode=filters.livemode,
        attempted_at__gte=month_start(filters.start),
        attempted_at__lt=month_start(add_months(filters.end, 1)),
    )
    if filters.brand:
        payments = payments.filter(invoice__brand_id=filters.brand)
    if filters.currency:
        payments = payments.filter(currency=filters.currency)
    if filters.country:
        payments = payments.filter(customer__country=filters.country)
    if filters.plan:
        payments = payments.filter(invoice__lines__price_id=filters.plan).distinct()
    if filters.customer:
        payments = payments.filter(customer_id=filters.customer)
    return payments


@dataclass(frozen=True, slots=True)
class PaymentRateRow:
    method: str
    gateway: str
    currency: str
    attempts: int
    succeeded: int
    failed: int
    amount_succeeded: int

    @property
    def success_rate(self) -> Fraction | None:
        settled = self.succeeded + self.failed
        return Fraction(self.succeeded, settled) if settled else None


def payment_success(*, filters: ReportFilters) -> list[PaymentRateRow]:
    """Attempts in the period by method and gateway; the rate counts settled attempts only."""
    rows = (
        _payments(filters)
        .values("method", "gateway", "currency")
        .annotate(
            attempts=Count("pk"),
            succeeded=Count("pk", filter=Q(status=Payment.Status.SUCCEEDED)),
            failed=Count("pk", filter=Q(status=Payment.Status.FAILED)),
            amount_succeeded=Sum("amount", filter=Q(status=Payment.Status.SUCCEEDED)),
        )
        .order_by("method", "gateway", "currency")
    )
    return [
        PaymentRateRow(
            method=row["method"],
            gateway=row["gateway"],
            currency=row["currency"],
            attempts=row["attempts"],
            succeeded=row["succeeded"],
            failed=row["failed"],
            amount_succeeded=int(row["amount_succeeded"] or 0),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class DeclineRow:
    decline_code: str
    method: str
    failures: int
    amount: int
    currency: str


def decline_reasons(*, filters: ReportFilters) -> list[DeclineRow]:
    rows = (
        _payments(filters)
        .filter(status=Payment.Status.FAILED)
        .values("decline_code", "method", "currency")
        .annotate(failures=Count("pk"), amount=Sum("amount"))
        .order_by("-failures", "decline_code", "method")
    )
    return [
        DeclineRow(
            decline_code=row["decline_code"] or "unknown",
            method=row["method"],
            failures=row["failures"],
            amount=int(row["amount"] or 0),
            currency=row["currency"],
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class DunningRow:
    currency: str
    cases: int
    recovered: int
    exhausted: int
    closed: int
    active: int
    recovered_amount: int
    average_time_to_recover: timedelta | None
    longest_time_to_recover: timedelta | None

    @property
    def recovery_rate(self) -> Fraction | None:
        """Recovered cases among those that ended by recovery or the final action."""
        concluded = self.recovered + self.exhausted
        return Fraction(self.recovered, concluded) if concluded else None


def dunning_recovery(*, filters: ReportFilters) -> list[DunningRow]:
    """Dunning cases opened in the period: how many were recovered and how fast."""
    cases = DunningCase.objects.filter(
        started_at__gte=month_start(filters.start), started_at__lt=month_start(add_months(filters.end, 1))
    )
    if filters.brand:
        cases = cases.filter(invoice__brand_id=filters.brand)
    if filters.currency:
        cases = cases.filter(invoice__currency=filters.currency)
    if filters.country:
        cases = cases.filter(customer__country=filters.country)
    if filters.plan:
        cases = cases.filter(invoice__lines__price_id=filters.plan).distinct()
    recovered = Q(status=DunningCase.Status.RECOVERED)
    time_to_recover = ExpressionWrapper(F("closed_at") - F("started_at"), output_field=DurationField())
    rows = (
        cases.values("invoice__currency")
        .annotate(
            cases=Count("pk"),
            recovered=Count("pk", filter=recovered),
            exhausted=Count("pk", filter=Q(status=DunningCase.Status.EXHAUSTED)),
            closed=Count("pk", filter=Q(status=DunningCase.Status.CLOSED)),
            active=Count("pk", filter=Q(status=DunningCase.Status.ACTIVE)),
            recovered_amount=Sum("invoice__amount_due", filter=recovered),
            average=Avg(time_to_recover, filter=recovered & Q(closed_at__isnull=False)),
            longest=Max(time_to_recover, filter=recovered & Q(closed_at__isnull=False)),
        )
        .order_by("invoice__currency")
    )
    return [
        DunningRow(
            currency=row["invoice__currency"],
            cases=row["cases"],
            recovered=row["recovered"],
            exhausted=row["exhausted"],
            closed=row["closed"],
            active=row["active"],
            recovered_amount=int(row["recovered_amount"] or 0),
            average_time_to_recover=row["average"],
            longest_time_to_recover=row["longest"],
        )
        for row in rows
    ]


# -- Usage ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageRow:
    meter_id: int
    meter: str
    customer_id: int
    customer: str
    events: int
    total: Any  # Decimal: sum of values
    peak: Any  # Decimal: largest single value


def usage_by_meter(*, filters: ReportFilters) -> list[UsageRow]:
    """Usage events reported in the period, per meter and customer (what was reported,
    whatever the aggregation the price bills; billed amounts are on the usage lines)."""
    events = UsageEvent.objects.filter(
        timestamp__gte=month_start(filters.start), timestamp__lt=month_start(add_months(filters.end, 1))
    )
    if filters.brand:
        events = events.filter(customer__brand_id=filters.brand)
    if filters.currency:
        events = events.filter(customer__currency=filters.currency)
    if filters.country:
        events = events.filter(customer__country=filters.country)
    if filters.plan:
        events = events.filter(meter__prices__pk=filters.plan)
    if filters.customer:
        events = events.filter(customer_id=filters.customer)
    rows = (
        events.values("meter_id", "meter__name", "customer_id", "customer__legal_name")
        .annotate(events=Count("pk"), total=Sum("value"), peak=Max("value"))
        .order_by("meter__name", "-total", "customer_id")
    )
    return [
        UsageRow(
            meter_id=row["meter_id"],
            meter=row["meter__name"],
            customer_id=row["customer_id"],
            customer=row["customer__legal_name"],
            events=row["events"],
            total=row["total"],
            peak=row["peak"],
        )
        for row in rows
    ]


# -- Plan changes and the customer timeline --------------------------------------------

PLAN_CHANGE_KINDS = (SubscriptionChange.Kind.CHANGE, SubscriptionChange.Kind.SCHEDULED)


@dataclass(frozen=True, slots=True)
class PlanChangeRow:
    customer_id: int
    customer: str
    currency: str
    changes: int
    upgrades: int
    downgrades: int
    first_change: datetime
    last_change: datetime
    mrr_change: int  # sum of (MRR after - MRR before) over the changes


def plan_change_history(*, filters: ReportFilters, min_changes: int = 1) -> list[PlanChangeRow]:
    """Customers by number of plan or quantity changes in the period, most changes first."""
    changes = SubscriptionChange.objects.filter(
        kind__in=PLAN_CHANGE_KINDS,
        effective_at__gte=month_start(filters.start),
        effective_at__lt=month_start(add_months(filters.end, 1)),
    )
    if filters.brand:
        changes = changes.filter(subscription__customer__brand_id=filters.brand)
    if filters.currency:
        changes = changes.filter(subscription__currency=filters.currency)
    if filters.country:
        changes = changes.filter(subscription__customer__country=filters.country)
    if filters.plan:
        changes = changes.filter(subscription__items__price_id=filters.plan)
    if filters.customer:
        changes = changes.filter(subscription__customer_id=filters.customer)
    rows = (
        changes.values("subscription__customer_id", "subscription__customer__legal_name", "subscription__currency")
        .annotate(
            changes=Count("pk", distinct=True),
            upgrades=Count("pk", filter=Q(mrr_after__gt=F("mrr_before")), distinct=True),
            downgrades=Count("pk", filter=Q(mrr_after__lt=F("mrr_before")), distinct=True),
            first_change=Min("effective_at"),
            last_change=Max("effective_at"),
            mrr_change=Sum(F("mrr_after") - F("mrr_before")),
        )
        .filter(changes__gte=min_changes)
        .order_by("-changes", "subscription__customer__legal_name")
    )
    return [
        PlanChangeRow(
            customer_id=row["subscription__customer_id"],
            customer=row["subscription__customer__legal_name"],
            currency=row["subscription__currency"],
            changes=row["changes"],
            upgrades=row["upgrades"],
            downgrades=row["downgrades"],
            first_change=row["first_change"],
            last_change=row["last_change"],
            mrr_change=int(row["mrr_change"] or 0),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    source: str  # "subscription", "invoice", "payment", ...
    kind: str  # the source's own kind or status
    summary: str
    amount: int | None = None
    currency: str | None = None
    reference: str = ""
    details: dict[str, Any] = field(default_factory=dict)


TimelineSource = Callable[..., list[TimelineEntry]]
TIMELINE_SOURCES: dict[str, TimelineSource] = {}


def timeline_source(name: str) -> Callable[[TimelineSource], TimelineSource]:
    """Register a source of customer timeline entries: `fn(*, customer_id, start, end)`.

    Other apps (notifications, surveys) add theirs with this decorator in their
    AppConfig.ready(); each source is one query over its own table.
    """

    def register(function: TimelineSource) -> TimelineSource:
        TIMELINE_SOURCES[name] = function
        return function

    return register


def customer_timeline(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    """Every event of one customer in [start, end), oldest first: the union of all sources."""
    entries: list[TimelineEntry] = []
    for source in TIMELINE_SOURCES.values():
        entries.extend(source(customer_id=customer_id, start=start, end=end))
    return sorted(entries, key=lambda entry: (entry.at, entry.source, entry.reference))


def _plan_label(items: list[dict[str, int]], labels: dict[int, str]) -> str:
    return ", ".join(
        f"{labels.get(item.get('price'), '#' + str(item.get('price')))}"
        + (f" × {item['quantity']}" if item.get("quantity", 1) != 1 else "")
        for item in items
    )


@timeline_source("subscription")
def _subscription_changes(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    changes = list(
        SubscriptionChange.objects.filter(
            subscription__customer_id=customer_id, effective_at__gte=start, effective_at__lt=end
        )
        .select_related("subscription")
        .order_by("effective_at", "pk")
    )
    price_ids = {item.get("price") for change in changes for item in (*change.items_before, *change.items_after)}
    labels = {
        price.pk: price.nickname or price.product.name
        for price in Price.objects.filter(pk__in=price_ids).select_related("product")
    }
    return [
        TimelineEntry(
            at=change.effective_at,
            source="subscription",
            kind=change.kind,
            summary=change.get_kind_display(),
            amount=change.mrr_after - change.mrr_before,
            currency=change.subscription.currency,
            reference=f"#{change.subscription_id}",
            details={
                "from_plan": _plan_label(change.items_before, labels),
                "to_plan": _plan_label(change.items_after, labels),
                "mrr_before": change.mrr_before,
                "mrr_after": change.mrr_after,
                "proration_amount": change.proration_amount,
            },
        )
        for change in changes
    ]


@timeline_source("invoice")
def _invoices_issued(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    rows = Invoice.objects.filter(customer_id=customer_id, finalized_at__gte=start, finalized_at__lt=end).values(
        "number", "status", "billing_reason", "total", "currency", "finalized_at", "paid_at"
    )
    return [
        TimelineEntry(
            at=row["finalized_at"],
            source="invoice",
            kind=row["status"],
            summary=row["billing_reason"],
            amount=row["total"],
            currency=row["currency"],
            reference=row["number"] or "",
            details={"paid_at": row["paid_at"]},
        )
        for row in rows
    ]


@timeline_source("payment")
def _payments_attempted(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    rows = Payment.objects.filter(customer_id=customer_id, attempted_at__gte=start, attempted_at__lt=end).values(
        "status", "method", "gateway", "amount", "currency", "attempted_at", "decline_code", "invoice__number"
    )
    return [
        TimelineEntry(
            at=row["attempted_at"],
            source="payment",
            kind=row["status"],
            summary=row["method"],
            amount=row["amount"],
            currency=row["currency"],
            reference=row["invoice__number"] or "",
            details={"gateway": row["gateway"], "decline_code": row["decline_code"]},
        )
        for row in rows
    ]


@timeline_source("dunning")
def _dunning_cases(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    rows = DunningCase.objects.filter(customer_id=customer_id, started_at__gte=start, started_at__lt=end).values(
        "status",
        "started_at",
        "closed_at",
        "retries_done",
        "final_action",
        "invoice__number",
        "invoice__amount_due",
        "invoice__currency",
    )
    return [
        TimelineEntry(
            at=row["started_at"],
            source="dunning",
            kind=row["status"],
            summary=row["final_action"],
            amount=row["invoice__amount_due"],
            currency=row["invoice__currency"],
            reference=row["invoice__number"] or "",
            details={"retries_done": row["retries_done"], "closed_at": row["closed_at"]},
        )
        for row in rows
    ]


@timeline_source("credit_note")
def _credit_notes(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    from invoices.models import CreditNote

    rows = CreditNote.objects.filter(customer_id=customer_id, issued_at__gte=start, issued_at__lt=end).values(
        "number", "status", "reason", "total", "currency", "issued_at", "refunded"
    )
    return [
        TimelineEntry(
            at=row["issued_at"],
            source="credit_note",
            kind=row["status"],
            summary=row["reason"],
            amount=-row["total"],
            currency=row["currency"],
            reference=row["number"],
            details={"refunded": row["refunded"]},
        )
        for row in rows
    ]


# Event types another source already shows (or too many to list, like usage batches).
_EVENTS_SHOWN_ELSEWHERE = (
    "invoice.",
    "payment.",
    "customer.subscription.",
    "credit_note.",
    "dunning",
    "billing.meter",
    "feedback.response_received",
)


@timeline_source("event")
def _other_events(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    """The rest of the event log: payment methods, discounts, balance adjustments..."""
    from config.events.models import DomainEvent

    shown = Q()
    for prefix in _EVENTS_SHOWN_ELSEWHERE:
        shown |= Q(type__startswith=prefix)
    rows = (
        DomainEvent.objects.filter(customer_id=customer_id, occurred_at__gte=start, occurred_at__lt=end)
        .exclude(shown)
        .values("type", "object_type", "object_id", "occurred_at")
    )
    return [
        TimelineEntry(
            at=row["occurred_at"],
            source="event",
            kind=row["type"],
            summary=row["object_type"],
            reference=f"{row['object_type']}:{row['object_id']}",
        )
        for row in rows
    ]


@timeline_source("notification")
def _notifications(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    """Emails sent to the customer (or skipped/failed), by the notification log."""
    from django.db.models.functions import Coalesce

    from customers.models import NotificationLog

    rows = (
        NotificationLog.objects.filter(customer_id=customer_id)
        .alias(when=Coalesce("sent_at", "created_at"))
        .filter(when__gte=start, when__lt=end)
        .values("kind", "status", "subject", "recipient", "created_at", "sent_at", "dedupe_key")
    )
    return [
        TimelineEntry(
            at=row["sent_at"] or row["created_at"],
            source="notification",
            kind=f"{row['kind']}:{row['status']}",
            summary=row["subject"] or row["kind"],
            reference=row["dedupe_key"],
            details={"recipient": row["recipient"], "status": row["status"]},
        )
        for row in rows
    ]


@timeline_source("survey")
def _survey_answers(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    """Survey responses with their answers: scores, choices and the start of free text."""
    from feedback.models import SurveyResponse

    responses = (
        SurveyResponse.objects.filter(customer_id=customer_id, submitted_at__gte=start, submitted_at__lt=end)
        .select_related("survey")
        .prefetch_related("answers__question", "answers__choices")
    )
    entries = []
    for response in responses:
        answers = []
        for answer in response.answers.all():
            if answer.score is not None:
                answers.append(f"{answer.question.kind}={answer.score}")
            answers.extend(choice.code for choice in answer.choices.all())
            if answer.text:
                answers.append(answer.text[:120])
        entries.append(
            TimelineEntry(
                at=response.submitted_at,
                source="survey",
                kind=response.trigger,
                summary=response.survey.name,
                reference=f"survey:{response.survey_id}",
                details={"answers": "; ".join(answers)},
            )
        )
    return entries
