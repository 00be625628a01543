"""Churn and retention rates, and the cohort table, from the MRR summary's customer-months."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from reports.filters import ReportFilters, months_between
from reports.selectors.common import fetch, month_number
from reports.selectors.mrr import mrr_ctes, mrr_movements, summary_where
from reports.selectors.mrr_source import COHORT_TABLE, SUMMARY_TABLE, mrr_source


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
    source = mrr_source(filters)
    if source is None:
        return []
    if filters.brand or filters.plan:
        sql, params, _last = mrr_ctes(filters, source)
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
    elif source.relation == SUMMARY_TABLE and not filters.customer and not filters.country:
        # The summary's cohort cells per mode and currency: a few hundred rows.
        base = month_number(filters.start.year, filters.start.month)
        final = base + filters.month_count - 1
        currency, currency_params = ("AND currency = %s", [filters.currency]) if filters.currency else ("", [])
        sql = (
            f"SELECT currency, cohort - {base}, month - cohort, customers, mrr FROM {COHORT_TABLE} "
            f"WHERE livemode = %s AND cohort >= {base} AND cohort <= {final} AND month <= {final} {currency}"
        )
        params = [filters.livemode, *currency_params]
    else:  # the customers' monthly totals know each customer's first paying month
        base = month_number(filters.start.year, filters.start.month)
        final = base + filters.month_count - 1
        where, where_params = summary_where(filters)
        table = source.relation
        starts = f"""starts AS (
            SELECT c.customer_id AS customer_id, c.currency AS currency, c.month AS cohort
            FROM {table} c
            WHERE c.price_id IS NULL AND c.is_first AND c.month >= {base} AND c.month <= {final} {where}
        )"""
        sql = f"""
        {source.with_clause(starts)}
        SELECT s.currency, s.cohort - {base}, l.month - s.cohort, COUNT(*), SUM(l.mrr)
        FROM starts s
        JOIN {table} l
          ON l.customer_id = s.customer_id AND l.currency = s.currency AND l.price_id IS NULL
         AND l.month >= s.cohort AND l.month <= {final} AND l.mrr > 0
        GROUP BY s.currency, s.cohort, l.month - s.cohort
        """
        params = [*source.params, *where_params]
    rows = fetch(sql, params)
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
