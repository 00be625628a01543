"""The month summaries' writer (issue 20): what the `billed`, `invoices-by-status` and
`revenue-recognition` reports read instead of aggregating every invoice and line at each read
(61 s for revenue recognition at 100,000 subscriptions).

Each summary holds rows per brand, mode, currency, customer country and month (plus line
kind, status or price: reports/models.py); reports read it as it stands and say as of when
(reports/selectors/summaries.py). Written only here, called by the beat task
`reports.refresh_summaries` and `manage.py reports_refresh_summaries [--full]`.

A refresh recomputes the **months** touched by the invoices changed since the last one
(`updated_at` at or after the exact watermark of reports/summary.py: the refresh's start
moved back to the oldest write transaction still open then): a month is deleted and
inserted again from the source rows, so a refresh is idempotent. Which months an invoice
touches: billed — the month it was finalized; status — that month and the month it was
created (a draft counts there until finalized); recognition — every month its subscription
lines' service periods overlap, and the month it was finalized. The first refresh, one
after TARIF_REPORTS_TIMEZONE changed, and `full=True` rebuild every month, in slices (the
command's progress bar counts them). What no invoice's `updated_at` shows — a deleted draft,
a customer's new country — waits for the nightly full rebuild (beat entry
`reports-rebuild-summaries`).

Two more (issue 20 item 7). **receivables** (AR aging and DSO): per month, what customers
owed at the month's end by days past due, and the totals of the invoices issued in it; the
month the refresh runs in is a snapshot at the refresh (`started`), retaken by every refresh
(AT_REFRESH), and the month it closed is retaken at its end by the first refresh after. What
an invoice owes counts in every snapshot from its finalization on (its amount at its current
state), so a changed invoice recomputes the months from its finalization's. **payments**
(payments and declines): attempts per month of `attempted_at`, method, gateway, status and
decline code, recomputed for the months of the attempts whose `updated_at` moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from config import clock
from invoices.models import Invoice
from reports.filters import add_months, month_start
from reports.locks import summary_state_qs_for_update
from reports.models import SummaryState
from reports.selectors.common import BILLED_STATUSES, LINE_NET_SQL, as_month, db_datetime, month_number
from reports.selectors.summaries import (
    BILLED,
    INVOICE_STATUS,
    PAYMENTS,
    RECEIVABLES,
    RECOGNITION,
    SUMMARY_NAMES,
    TABLES,
    month_index,
)
from reports.summary import LOOK_BACK, changes_seen_until

__all__ = ["SLICE_MONTHS", "Progress", "report_summaries_refresh", "report_summary_refresh"]

SLICE_MONTHS = 3  # months recomputed per statement: a full rebuild reports progress per slice
# Receivables: each statement is one pass over all the invoices whatever its months (an invoice
# counts in every month it stays open), so a year per pass (at 100,000 subscriptions a full
# rebuild took 4.5-5.5 s in slices of 13 months, 6.4-7.2 s in slices of 3).
RECEIVABLES_SLICE_MONTHS = 12
Progress = Callable[[str, int, int], None]  # (summary, months done, months to do)

_STATUSES = ", ".join(repr(status) for status in BILLED_STATUSES)
_GRAIN = "i.brand_id, c.livemode, i.currency, c.country"
_INVOICES = "invoices_invoice i JOIN customers_customer c ON c.id = i.customer_id"
_LINES_FROM = (
    "invoices_invoiceline l JOIN invoices_invoice i ON i.id = l.invoice_id "
    "JOIN customers_customer c ON c.id = i.customer_id"
)
_IN_MONTH = "{at} >= m.month_start AND {at} < m.month_end"


def report_summaries_refresh(
    *, full: bool = False, names: Sequence[str] = SUMMARY_NAMES, progress: Progress | None = None
) -> dict[str, int]:
    """Refresh each summary (its own transaction); per summary, the months recomputed (-1: all)."""
    return {name: report_summary_refresh(name=name, full=full, progress=progress) for name in names}


def report_summary_refresh(*, name: str, full: bool = False, progress: Progress | None = None) -> int:
    """Bring one summary up to date; returns the number of months recomputed (-1: rebuilt)."""
    if name not in TABLES:
        raise ValueError(f"unknown report summary: {name}")
    with transaction.atomic():
        SummaryState.objects.get_or_create(name=name)
        state = summary_state_qs_for_update().get(name=name)
        started = clock.system_now()
        seen_until = changes_seen_until(started=started)
        zone = settings.TARIF_REPORTS_TIMEZONE
        rebuild = full or state.refreshed_at is None or state.timezone != zone
        calendar = _calendar(name, started=started)
        if rebuild:
            months = calendar
        else:
            assert state.refreshed_at is not None  # not a rebuild
            since = state.changes_seen_until
            if since is None:  # the last refresh ran on SQLite
                since = state.refreshed_at - LOOK_BACK
            months = _changed_months(name, since=since, calendar=calendar, previous=state.refreshed_at)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL jit = off")
                cursor.execute("SET LOCAL work_mem = '64MB'")
            if rebuild:
                cursor.execute(f"DELETE FROM {TABLES[name]}")
            if progress:
                progress(name, 0, len(months))
            step = RECEIVABLES_SLICE_MONTHS if name == RECEIVABLES else SLICE_MONTHS
            for offset in range(0, len(months), step):
                chunk = months[offset : offset + step]
                _recompute(cursor, name, chunk=chunk, calendar=calendar, delete=not rebuild, started=started)
                if progress:
                    progress(name, offset + len(chunk), len(months))
            if connection.vendor == "postgresql" and rebuild:
                cursor.execute(f"ANALYZE {TABLES[name]}")
        state.refreshed_at = started
        state.changes_seen_until = seen_until
        state.timezone = zone
        state.save(update_fields=["refreshed_at", "changes_seen_until", "timezone"])
        return -1 if rebuild else len(months)


# -- The months: the calendar of the data, and the ones a change touches -------------------


def _month_of(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def _months_cte(name: str, indexes: Sequence[int]) -> tuple[str, list[Any]]:
    """`name(idx, month_start, month_end)` for the given month numbers (not necessarily consecutive)."""
    rows, params = [], []
    for index in indexes:
        month = _month_of(index)
        rows.append(f"({int(index)}, %s, %s)")
        params += [db_datetime(month_start(month)), db_datetime(month_start(add_months(month, 1)))]
    return f"{name}(idx, month_start, month_end) AS (VALUES {', '.join(rows)})", params


def _fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def _calendar(name: str, *, started: datetime) -> list[int]:
    """Every month number from the first to the last month any source row can land in
    (receivables: to the month of the refresh, whose snapshot is taken at `started`)."""
    if name == RECEIVABLES:
        (first,) = _fetch("SELECT MIN(finalized_at) FROM invoices_invoice", [])[0]
        if first is None:
            return []
        return list(range(month_index(as_month(first)), month_index(as_month(started)) + 1))
    if name == PAYMENTS:
        instants = [
            value
            for value in _fetch("SELECT MIN(attempted_at), MAX(attempted_at) FROM billing_payment", [])[0]
            if value is not None
        ]
        if not instants:
            return []
        return list(range(month_index(as_month(min(instants))), month_index(as_month(max(instants))) + 1))
    instants = [
        value
        for value in _fetch(
            "SELECT MIN(created_at), MAX(created_at), MIN(finalized_at), MAX(finalized_at) FROM invoices_invoice", []
        )[0]
        if value is not None
    ]
    if name == RECOGNITION:
        instants += [
            value
            for value in _fetch(
                "SELECT MIN(period_start), MAX(period_end) FROM invoices_invoiceline "
                "WHERE kind = 'subscription' AND period_start IS NOT NULL",
                [],
            )[0]
            if value is not None
        ]
    if not instants:
        return []
    months = [as_month(value) for value in instants]
    first, last = min(months), max(months)
    return list(range(month_number(first.year, first.month), month_number(last.year, last.month) + 1))


def _changed_months(name: str, *, since: datetime, calendar: list[int], previous: datetime) -> list[int]:
    if not calendar:
        return []
    if name == RECEIVABLES:
        # What an invoice owes counts in every month-end snapshot from its finalization on (its
        # amount is taken at its current state), so a change recomputes those months; and the
        # snapshots taken at the last refresh (its month, and any month ended since) are retaken.
        (first,) = _fetch(
            "SELECT MIN(finalized_at) FROM invoices_invoice WHERE updated_at >= %s AND finalized_at IS NOT NULL",
            [db_datetime(since)],
        )[0]
        low = month_index(as_month(previous))
        if first is not None:
            low = min(low, month_index(as_month(first)))
        return [index for index in calendar if index >= low]
    months_sql, months_params = _months_cte("cal", calendar)
    if name == PAYMENTS:
        sql = f"""
            WITH {months_sql}
            SELECT DISTINCT m.idx FROM billing_payment p
            JOIN cal m ON {_IN_MONTH.format(at="p.attempted_at")}
            WHERE p.updated_at >= %s
        """
        return sorted(int(index) for (index,) in _fetch(sql, [*months_params, db_datetime(since)]))
    if name == RECOGNITION:
        sql = f"""
            WITH {months_sql}
            SELECT DISTINCT m.idx FROM invoices_invoiceline l JOIN invoices_invoice i ON i.id = l.invoice_id
            JOIN cal m ON (l.period_start < m.month_end AND l.period_end >= m.month_start)
                       OR ({_IN_MONTH.format(at="i.finalized_at")})
            WHERE i.updated_at >= %s AND l.kind = 'subscription' AND l.period_start IS NOT NULL
        """
    else:
        also_created = f"OR ({_IN_MONTH.format(at='i.created_at')})" if name == INVOICE_STATUS else ""
        sql = f"""
            WITH {months_sql}
            SELECT DISTINCT m.idx FROM invoices_invoice i
            JOIN cal m ON ({_IN_MONTH.format(at="i.finalized_at")}) {also_created}
            WHERE i.updated_at >= %s
        """
    return sorted(int(index) for (index,) in _fetch(sql, [*months_params, db_datetime(since)]))


# -- Recomputing months from the source rows ------------------------------------------------


def _recompute(
    cursor: Any, name: str, *, chunk: Sequence[int], calendar: Sequence[int], delete: bool, started: datetime
) -> None:
    table = TABLES[name]
    if delete:
        cursor.execute(f"DELETE FROM {table} WHERE month IN ({', '.join(str(int(index)) for index in chunk)})")
    if name == RECEIVABLES:
        columns = "brand_id, livemode, currency, country, month, kind, invoices, amount"
        sql, params = _receivables_sql(chunk, started=started)
    elif name == PAYMENTS:
        columns = (
            "brand_id, livemode, currency, country, month, method, gateway, status, decline_code, attempts, amount"
        )
        sql, params = _payments_sql(chunk)
    elif name == BILLED:
        columns = "brand_id, livemode, currency, country, month, kind, net, tax"
        sql, params = _billed_sql(chunk)
    elif name == INVOICE_STATUS:
        columns = "brand_id, livemode, currency, country, month, status, invoices, total, amount_remaining"
        sql, params = _status_sql(chunk)
    else:
        columns = "brand_id, livemode, currency, country, price_id, month, invoiced, recognized"
        sql, params = _recognition_sql(chunk, calendar)
    cursor.execute(f"INSERT INTO {table} ({columns}) {sql}", params)


def _billed_sql(chunk: Sequence[int]) -> tuple[str, list[Any]]:
    """The `billed` report's two aggregates (reports.selectors.revenue.billed_by_kind) per grain."""
    months_sql, params = _months_cte("rm", chunk)
    in_month = _IN_MONTH.format(at="i.finalized_at")
    sql = f"""
        WITH {months_sql}
        SELECT {_GRAIN}, m.idx, l.kind, SUM({LINE_NET_SQL}), SUM(l.tax_amount)
        FROM {_LINES_FROM} JOIN rm m ON {in_month}
        WHERE i.status IN ({_STATUSES})
        GROUP BY {_GRAIN}, m.idx, l.kind
        UNION ALL
        SELECT {_GRAIN}, m.idx, 'invoice_total', SUM(i.total), 0
        FROM {_INVOICES} JOIN rm m ON {in_month}
        WHERE i.status IN ({_STATUSES})
        GROUP BY {_GRAIN}, m.idx
    """
    return sql, params


def _status_sql(chunk: Sequence[int]) -> tuple[str, list[Any]]:
    """The `invoices-by-status` aggregate (reports.selectors.receivables.invoices_by_status) per grain."""
    months_sql, params = _months_cte("rm", chunk)
    sql = f"""
        WITH {months_sql}
        SELECT {_GRAIN}, m.idx, i.status, COUNT(*), SUM(i.total), SUM(i.amount_remaining)
        FROM {_INVOICES} JOIN rm m ON {_IN_MONTH.format(at="COALESCE(i.finalized_at, i.created_at)")}
        GROUP BY {_GRAIN}, m.idx, i.status
    """
    return sql, params


def _recognition_sql(chunk: Sequence[int], calendar: Sequence[int]) -> tuple[str, list[Any]]:
    """Revenue recognition (reports.selectors.revenue.revenue_recognition) per grain and price,
    for the months of `chunk`. The lines touching those months are spread over the whole
    calendar (a line's share depends on all its month ends), then only the chunk's months kept."""
    calendar_sql, calendar_params = _months_cte("cal", calendar)
    low = db_datetime(month_start(_month_of(min(chunk))))
    high = db_datetime(month_start(add_months(_month_of(max(chunk)), 1)))
    wanted = ", ".join(str(int(index)) for index in chunk)
    dims = "brand_id, livemode, currency, country, price_id"
    x_dims = ", ".join(f"x.{dim}" for dim in dims.split(", "))
    sql = f"""
        WITH {calendar_sql},
        lines AS (
            SELECT l.id AS line_id, {_GRAIN}, l.price_id AS price_id, {LINE_NET_SQL} AS net,
                   l.period_start AS period_start, l.period_end AS period_end, i.finalized_at AS finalized_at
            FROM {_LINES_FROM}
            WHERE l.kind = 'subscription' AND l.period_start IS NOT NULL AND i.status IN ({_STATUSES})
              AND ((l.period_start < %s AND l.period_end >= %s) OR (i.finalized_at >= %s AND i.finalized_at < %s))
        ),
        spread AS (
            SELECT {x_dims}, m.idx AS idx, x.net AS net,
                   COUNT(*) OVER (PARTITION BY x.line_id) AS n,
                   ROW_NUMBER() OVER (PARTITION BY x.line_id ORDER BY m.idx) AS k
            FROM lines x JOIN cal m ON x.period_start < m.month_end AND x.period_end >= m.month_end
        ),
        parts AS (
            SELECT {dims}, idx, SUM(net / n + CASE WHEN k = n THEN net - (net / n) * n ELSE 0 END) AS recognized,
                   0 AS invoiced
            FROM spread WHERE idx IN ({wanted}) GROUP BY {dims}, idx
            UNION ALL
            SELECT {x_dims}, m.idx, SUM(x.net), 0
            FROM lines x JOIN cal m ON x.period_start >= m.month_start AND x.period_start < m.month_end
            WHERE x.period_end < m.month_end AND m.idx IN ({wanted})
            GROUP BY {x_dims}, m.idx
            UNION ALL
            SELECT {x_dims}, m.idx, 0, SUM(x.net)
            FROM lines x JOIN cal m ON x.finalized_at >= m.month_start AND x.finalized_at < m.month_end
            WHERE m.idx IN ({wanted})
            GROUP BY {x_dims}, m.idx
        )
        SELECT {dims}, idx, SUM(invoiced), SUM(recognized) FROM parts GROUP BY {dims}, idx
    """
    return sql, [*calendar_params, high, low, low, high]


def _receivables_sql(chunk: Sequence[int], *, started: datetime) -> tuple[str, list[Any]]:
    """The AR aging (reports.selectors.receivables.ar_aging_live) of each month of `chunk` at its
    end — at `started` for a month not ended yet — and the invoice totals issued in the month
    before that instant (the DSO's billed figure)."""
    rows, params = [], []
    for index in chunk:
        month = _month_of(index)
        as_of = min(month_start(add_months(month, 1)), started)
        rows.append(f"({int(index)}, %s, %s, %s, %s, %s)")
        params += [
            db_datetime(value)
            for value in (
                month_start(month),
                as_of,
                as_of - timedelta(days=30),
                as_of - timedelta(days=60),
                as_of - timedelta(days=90),
            )
        ]
    owed = f"CASE WHEN i.status = '{Invoice.Status.OPEN}' THEN i.amount_remaining ELSE i.amount_due END"
    due = "COALESCE(i.due_at, i.finalized_at)"
    not_receivable = ", ".join(f"'{status}'" for status in (Invoice.Status.DRAFT, Invoice.Status.UNCOLLECTIBLE))
    sql = f"""
        WITH ra(idx, month_start, as_of, d30, d60, d90) AS (VALUES {", ".join(rows)})
        SELECT {_GRAIN}, m.idx,
               CASE WHEN {due} >= m.as_of THEN 'current' WHEN {due} >= m.d30 THEN '1-30'
                    WHEN {due} >= m.d60 THEN '31-60' WHEN {due} >= m.d90 THEN '61-90' ELSE '90+' END,
               COUNT(*), SUM({owed})
        FROM {_INVOICES} JOIN ra m ON i.finalized_at <= m.as_of
             AND (i.paid_at IS NULL OR i.paid_at > m.as_of) AND (i.voided_at IS NULL OR i.voided_at > m.as_of)
        WHERE i.status NOT IN ({not_receivable}) AND {owed} > 0
        GROUP BY 1, 2, 3, 4, 5, 6
        UNION ALL
        SELECT {_GRAIN}, m.idx, 'billed', COUNT(*), SUM(i.total)
        FROM {_INVOICES} JOIN ra m ON i.finalized_at >= m.month_start AND i.finalized_at < m.as_of
        WHERE i.status IN ({_STATUSES})
        GROUP BY 1, 2, 3, 4, 5
    """
    return sql, params


def _payments_sql(chunk: Sequence[int]) -> tuple[str, list[Any]]:
    """The payment attempts of each month of `chunk` (reports.selectors.payments) per grain,
    method, gateway, status and decline code; brand the invoice's, mode and country the customer's."""
    months_sql, params = _months_cte("rm", chunk)
    sql = f"""
        WITH {months_sql}
        SELECT i.brand_id, c.livemode, p.currency, c.country, m.idx, p.method, p.gateway, p.status,
               p.decline_code, COUNT(*), SUM(p.amount)
        FROM billing_payment p JOIN invoices_invoice i ON i.id = p.invoice_id
        JOIN customers_customer c ON c.id = p.customer_id
        JOIN rm m ON {_IN_MONTH.format(at="p.attempted_at")}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    """
    return sql, params
