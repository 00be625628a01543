"""MRR, ARR and the movements that explain each month's change, per currency.

Read from the MRR summary's customer-months (reports/selectors/mrr_source.py): the
summary table as it stands, or its rows computed from the invoice lines while it has
never been built. Nothing here writes; see docs/reports.md for the definitions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from reports.filters import ReportFilters, add_months, months_between
from reports.selectors.common import TEST_MODE_CUSTOMERS_SQL, fetch, month_number
from reports.selectors.mrr_source import (
    MONTH_TOTAL_FIGURES,
    MONTH_TOTAL_TABLE,
    MOVEMENT_SUMS,
    SUMMARY_TABLE,
    MrrSource,
    mrr_source,
)


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


def summary_where(filters: ReportFilters) -> tuple[str, list[Any]]:
    """The central filters on the summary's rows (alias `c`), as `AND ...` clauses."""
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


def mrr_ctes(filters: ReportFilters, source: MrrSource) -> tuple[str, list[Any], int]:
    """The CTEs the filtered MRR reports share, over the summary's per-price rows.

    - `live`: MRR per customer, currency and month (index 0 = the period's first month,
      -1 = the month before it, to know where each customer stood when it began). A
      subscription line for [period_start, period_end) counts in month M when
      period_start < end of M <= period_end (see docs/reports.md);
    - `seq`: each live customer-month with the customer's previous and next live month
      (window functions), from which `mrr_movements` labels it;
    - `earlier`: customers who paid before the month before the period (a return is a
      reactivation, not new business).
    """
    before = add_months(filters.start, -1)
    base = month_number(before.year, before.month) + 1  # index 0 = the period's first month
    last = month_number(filters.end.year, filters.end.month) - base
    where, where_params = summary_where(filters)
    table = source.relation
    if filters.brand or filters.plan:
        live = f"""
        SELECT c.customer_id AS customer_id, c.currency AS currency, c.month AS month, c.month - {base} AS idx,
               SUM(c.mrr) AS mrr
        FROM {table} c
        WHERE c.price_id IS NOT NULL AND c.month >= {base - 1} AND c.month <= {base + last} {where}
        GROUP BY c.currency, c.customer_id, c.month
        HAVING SUM(c.mrr) > 0
        """
        scope = "c.price_id IS NOT NULL"
    else:  # the customers' monthly totals: one row each, read in index order
        live = f"""
        SELECT c.customer_id AS customer_id, c.currency AS currency, c.month AS month, c.month - {base} AS idx,
               c.mrr AS mrr
        FROM {table} c
        WHERE c.price_id IS NULL AND c.month >= {base - 1} AND c.month <= {base + last} AND c.mrr > 0 {where}
        """
        scope = "c.price_id IS NULL"
    sql = source.with_clause(
        f"live AS ({live})",
        """seq AS (
            SELECT customer_id, currency, idx, mrr,
                   LAG(idx) OVER w AS prev_idx, LAG(mrr) OVER w AS prev_mrr, LEAD(idx) OVER w AS next_idx
            FROM live
            WINDOW w AS (PARTITION BY currency, customer_id ORDER BY month)
        )""",
        f"""earlier AS (
            SELECT DISTINCT c.customer_id AS customer_id, c.currency AS currency
            FROM {table} c
            WHERE {scope} AND c.month < {base - 1} AND c.mrr > 0 {where}
        )""",
    )
    return sql, [*source.params, *where_params, *where_params], last


# A live customer-month `s` followed by a gap churns in the month after its own.
_CHURNS_NEXT = "(s.next_idx IS NULL OR s.next_idx > s.idx + 1) AND s.idx < {last}"


def mrr_movements(*, filters: ReportFilters) -> list[MrrMonth]:
    """MRR, ARR and the movements that explain each month's change, per currency.

    Read from the customers' monthly totals of the MRR summary, which carry the month
    before and the first paying month: one aggregate over the period's rows. Filtering
    by brand or plan looks at part of each customer's MRR, labelled on the fly instead.
    """
    source = mrr_source(filters)
    if source is None:
        return []
    if filters.brand or filters.plan:
        return _mrr_movements_by_window(filters=filters, source=source)
    months = months_between(filters.start, filters.end)
    base = month_number(filters.start.year, filters.start.month)
    last = base + len(months) - 1
    if source.relation == SUMMARY_TABLE and not filters.customer and not filters.country:
        # The summary's month totals per mode and currency: a few rows per month.
        currency, currency_params = ("AND currency = %s", [filters.currency]) if filters.currency else ("", [])
        rows = fetch(
            f"SELECT currency, month - {base}, {', '.join(MONTH_TOTAL_FIGURES)} FROM {MONTH_TOTAL_TABLE} "
            f"WHERE livemode = %s AND month >= {base} AND month <= {last} {currency}",
            [filters.livemode, *currency_params],
        )
    else:
        where, where_params = summary_where(filters)
        rows = fetch(
            f"""
            {source.with_clause()}
            SELECT c.currency, c.month - {base}, {", ".join(MOVEMENT_SUMS)}
            FROM {source.relation} c
            WHERE c.price_id IS NULL AND c.month >= {base} AND c.month <= {last} {where}
            GROUP BY c.currency, c.month
            """,
            [*source.params, *where_params],
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


def _mrr_movements_by_window(*, filters: ReportFilters, source: MrrSource) -> list[MrrMonth]:
    """Movements of a part of each customer's MRR (a brand, a plan): window functions over
    the customer-months of that part, each labelled and summed into its month; the churn
    of a customer's last live month before a gap is summed there and moved to the month after.
    """
    months = months_between(filters.start, filters.end)
    sql, params, last = mrr_ctes(filters, source)
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
    for currency, idx, *figures in fetch(sql + labelled, params):
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
