"""The MRR summary: each customer's MRR per month (and brand and price), derived from the
subscription lines of issued invoices, kept up to date incrementally.

The MRR reports read this table instead of expanding every invoice line into months
each time (a year of invoices for 100,000 subscriptions is a million lines). Before
each read, `mrr_summary_refresh` recomputes the customers whose invoices changed since
the last refresh (an index on `invoices_invoice.updated_at` finds them): issued lines
never change, so an invoice issued, voided or paid is the only thing that moves MRR.
The first refresh (or a change of TARIF_REPORTS_TIMEZONE) builds everything.

Two kinds of rows: per brand and price (what brand and plan filters read), and the
customer's total of the month (brand and price empty) with the MRR of the month before
and whether it is the first paying month, plus a zero row for the month after each
paying stretch (a churn): the movements are then one aggregate, with no window.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction

from config import clock
from reports.filters import add_months
from reports.locks import mrr_summary_state_qs_for_update
from reports.models import MrrSummaryState

# Invoices written by transactions still open when a refresh starts commit with an
# earlier `updated_at`; looking back this far catches them (recomputing is idempotent).
LOOK_BACK = timedelta(minutes=10)
TABLE = "reports_customermonthmrr"


def month_number(year: int, month: int) -> int:
    return year * 12 + month - 1


def mrr_summary_refresh(*, full: bool = False) -> int:
    """Bring the summary up to date; returns the number of customers recomputed (-1: all)."""
    from invoices.models import Invoice

    with transaction.atomic():
        MrrSummaryState.objects.get_or_create(pk=1)
        state = mrr_summary_state_qs_for_update().get(pk=1)
        started = clock.system_now()
        zone = settings.TARIF_REPORTS_TIMEZONE
        rebuild = full or state.refreshed_at is None or state.timezone != zone
        scope, scope_params = "", []
        changed = -1
        if not rebuild:
            since = state.refreshed_at - LOOK_BACK
            changed = Invoice.objects.filter(updated_at__gte=since).values("customer_id").distinct().count()
            if not changed:
                state.refreshed_at = started
                state.save(update_fields=["refreshed_at"])
                return 0
            from reports.selectors import _db_datetime

            scope = "AND i.customer_id IN (SELECT customer_id FROM invoices_invoice WHERE updated_at >= %s)"
            scope_params = [_db_datetime(since)]
        _rebuild_rows(scope=scope, scope_params=scope_params)
        state.refreshed_at = started
        state.timezone = zone
        state.save(update_fields=["refreshed_at", "timezone"])
        if connection.vendor == "postgresql" and rebuild:
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {TABLE}")
        return changed


def _rebuild_rows(*, scope: str, scope_params: list) -> None:
    from reports.selectors import BILLED_STATUSES, _months_cte, _price_factors_cte, _rounded_mrr_sql, as_month

    total_scope = scope.replace("i.customer_id", "customer_id")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(f"DELETE FROM {TABLE} WHERE 1 = 1 {total_scope}", scope_params)
        factors = _price_factors_cte()
        statuses = ", ".join(repr(status) for status in BILLED_STATUSES)
        cursor.execute(
            f"""
            SELECT MIN(l.period_start), MAX(l.period_end)
            FROM invoices_invoiceline l JOIN invoices_invoice i ON i.id = l.invoice_id
            WHERE l.kind = 'subscription' AND l.period_start IS NOT NULL AND i.status IN ({statuses}) {scope}
            """,
            scope_params,
        )
        first, last = cursor.fetchone()
        if factors is None or first is None:
            return
        first_month, last_month = as_month(first), as_month(last)
        span = (last_month.year - first_month.year) * 12 + last_month.month - first_month.month
        months = [add_months(first_month, offset) for offset in range(span + 1)]
        months_sql, months_params = _months_cte(
            "months", months, first_index=month_number(first_month.year, first_month.month)
        )
        cursor.execute(
            f"""
            INSERT INTO {TABLE} (customer_id, currency, brand_id, price_id, month, mrr, previous_mrr, is_first)
            WITH {months_sql}, {factors}
            SELECT i.customer_id, i.currency, i.brand_id, l.price_id, m.idx, SUM({_rounded_mrr_sql()}), 0, FALSE
            FROM invoices_invoiceline l
            JOIN invoices_invoice i ON i.id = l.invoice_id
            JOIN factors f ON f.price_id = l.price_id
            JOIN months m ON l.period_start < m.month_end AND l.period_end >= m.month_end
            WHERE l.kind = 'subscription' AND i.status IN ({statuses}) {scope}
            GROUP BY i.customer_id, i.currency, i.brand_id, l.price_id, m.idx
            """,
            [*months_params, *scope_params],
        )
        cursor.execute(
            f"""
            INSERT INTO {TABLE} (customer_id, currency, brand_id, price_id, month, mrr, previous_mrr, is_first)
            WITH totals AS (
                SELECT customer_id, currency, month, SUM(mrr) AS mrr
                FROM {TABLE}
                WHERE price_id IS NOT NULL {total_scope}
                GROUP BY currency, customer_id, month
                HAVING SUM(mrr) > 0
            ),
            seq AS (
                SELECT customer_id, currency, month, mrr,
                       LAG(month) OVER w AS prev_month, LAG(mrr) OVER w AS prev_mrr,
                       LEAD(month) OVER w AS next_month, ROW_NUMBER() OVER w AS position
                FROM totals
                WINDOW w AS (PARTITION BY currency, customer_id ORDER BY month)
            )
            SELECT customer_id, currency, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), month, mrr,
                   CASE WHEN prev_month = month - 1 THEN prev_mrr ELSE 0 END,
                   CASE WHEN position = 1 THEN TRUE ELSE FALSE END
            FROM seq
            UNION ALL
            SELECT customer_id, currency, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), month + 1, 0, mrr, FALSE
            FROM seq
            WHERE next_month IS NULL OR next_month > month + 1
            ORDER BY 2, 1, 5
            """,
            scope_params,
        )
