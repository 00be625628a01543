"""The MRR summary's writer: each customer's MRR per month (and brand and price), derived
from the subscription lines of issued invoices, kept up to date incrementally.

The MRR reports read this table instead of expanding every invoice line into months
each time (a year of invoices for 100,000 subscriptions is a million lines). Reports never
write it: the beat task `reports.refresh_mrr_summary` (config/settings/celery.py) and the
command `manage.py reports_refresh_mrr_summary` call `mrr_summary_refresh`, which
recomputes the customers whose invoices changed since the last refresh (an index on
`invoices_invoice.updated_at` finds them): issued lines never change, so an invoice
issued, voided or paid is the only thing that moves MRR. The first refresh (or one after
a change of TARIF_REPORTS_TIMEZONE) builds everything, and so does a refresh that finds
most customers changed (a billing run has just billed the month): one build costs less
than deleting and recomputing nearly every customer (issue 20).

"Changed since the last refresh" is exact on PostgreSQL: the refresh records the instant
its figures are complete up to (`changes_seen_until`), its start moved back to the
oldest write transaction of the database still open then (pg_stat_activity), whose
invoices may commit later with an earlier `updated_at`. Until issue 20 a fixed 10-minute
look-back stood in for that, so every refresh within 10 minutes of a bulk change (a
billing run, a seed, an import) recomputed the whole change again: 31 s per refresh at
100,000 subscriptions, and per read while reads still refreshed (docs/PERFORMANCE.md).
SQLite has one writer at a time and keeps the look-back. Readers show the time of the last
refresh as the figures' "as of" (reports/selectors/mrr_source.py).

Two kinds of rows: per brand and price (what brand and plan filters read), and the
customer's total of the month (brand and price empty) with the MRR of the month before
and whether it is the first paying month, plus a zero row for the month after each
paying stretch (a churn): the movements are then one aggregate, with no window. The SQL
that derives them is shared with the reports' live read (`reports.selectors.mrr_source`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from config import clock
from invoices.models import Invoice
from reports.locks import mrr_summary_state_qs_for_update
from reports.models import CustomerMonthMrr, MrrSummaryState
from reports.selectors.common import db_datetime, price_factors_cte
from reports.selectors.mrr_source import (
    COHORT_TABLE,
    MONTH_TOTAL_FIGURES,
    MONTH_TOTAL_TABLE,
    MOVEMENT_SUMS,
    SUMMARY_COLUMNS,
    SUMMARY_TABLE,
    TOTAL_ROWS_SQL,
    price_rows_sql,
    subscription_line_bounds,
    summary_months_cte,
    total_ctes,
)

# SQLite: invoices written by a transaction still open when a refresh starts commit with
# an earlier `updated_at`; looking back this far catches them (recomputing is idempotent).
LOOK_BACK = timedelta(minutes=10)
# PostgreSQL: `updated_at` comes from the web and worker machines' clocks, the open
# transactions' start from the database server's; this covers their difference.
CLOCK_MARGIN = timedelta(seconds=2)
# Above this share of the summary's customers changed, one full build is cheaper.
REBUILD_SHARE = 0.5
REBUILD_MIN_CUSTOMERS = 1000  # below, recompute them (and skip counting the summary's)
TABLE = SUMMARY_TABLE
SCOPE_TABLE = "reports_mrr_refresh_scope"  # temporary, within one refresh's transaction

__all__ = [
    "CLOCK_MARGIN",
    "LOOK_BACK",
    "REBUILD_MIN_CUSTOMERS",
    "REBUILD_SHARE",
    "TABLE",
    "changes_seen_until",
    "mrr_cohort_differences",
    "mrr_month_total_differences",
    "mrr_summary_refresh",
]


def mrr_summary_refresh(*, full: bool = False) -> int:
    """Bring the summary up to date; returns the number of customers recomputed (-1: all)."""
    with transaction.atomic():
        MrrSummaryState.objects.get_or_create(pk=1)
        state = mrr_summary_state_qs_for_update().get(pk=1)
        started = clock.system_now()
        seen_until = changes_seen_until(started=started)
        zone = settings.TARIF_REPORTS_TIMEZONE
        rebuild = full or state.refreshed_at is None or state.timezone != zone
        scoped = False
        changed = -1
        if not rebuild:
            since = state.changes_seen_until
            if since is None:  # the last refresh ran on SQLite (or before issue 20)
                assert state.refreshed_at is not None  # not a rebuild
                since = state.refreshed_at - LOOK_BACK
            changed = Invoice.objects.filter(updated_at__gte=since).values("customer_id").distinct().count()
            if not changed:
                state.refreshed_at = started
                state.changes_seen_until = seen_until
                state.save(update_fields=["refreshed_at", "changes_seen_until"])
                return 0
            if changed >= REBUILD_MIN_CUSTOMERS and changed > REBUILD_SHARE * _customers_in_summary():
                rebuild, changed = True, -1
            else:
                _scope_freeze(since=since)
                scoped = True
        _rebuild_rows(scoped=scoped)
        if scoped:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {SCOPE_TABLE}")
        state.refreshed_at = started
        state.changes_seen_until = seen_until
        state.timezone = zone
        state.save(update_fields=["refreshed_at", "changes_seen_until", "timezone"])
        if connection.vendor == "postgresql" and rebuild:
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {TABLE}")
        return changed


def _scope_freeze(*, since: datetime) -> None:
    """The customers a scoped refresh recomputes, fixed once in a temporary table.

    Each statement of the refresh sees the invoices committed before it starts (READ
    COMMITTED): named by a subquery on the invoices, a customer whose invoice committed
    between the DELETE and the INSERTs would get its new rows next to its old ones, and the
    month totals would add what was never taken away. Dropped in the same transaction (no
    session state left behind a transaction-mode pooler)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {SCOPE_TABLE} AS "
            "SELECT DISTINCT customer_id FROM invoices_invoice WHERE updated_at >= %s",
            [db_datetime(since)],
        )


def _customers_in_summary() -> int:
    return CustomerMonthMrr.objects.filter(price__isnull=True).values("customer_id").distinct().count()


def changes_seen_until(*, started: datetime) -> datetime | None:
    """The instant before which every invoice change is visible to this refresh: its start,
    or the start of the oldest other write transaction of this database still open (its
    invoices commit later, stamped earlier). None on SQLite: the next refresh looks back."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT MIN(xact_start) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
        )
        (oldest,) = cursor.fetchone()
    return min(started, oldest or started) - CLOCK_MARGIN


def _in_scope(column: str) -> str:
    """The condition on `column` that keeps the customers of a scoped refresh (`_scope_freeze`)."""
    return f"AND {column} IN (SELECT customer_id FROM {SCOPE_TABLE})"


def _rebuild_rows(*, scoped: bool) -> None:
    scope, total_scope = (_in_scope("i.customer_id"), _in_scope("customer_id")) if scoped else ("", "")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        if scoped:
            _month_totals_add(cursor, sign=-1, scoped=True)
            _cohort_cells_add(cursor, sign=-1, scoped=True)
        else:
            cursor.execute(f"DELETE FROM {MONTH_TOTAL_TABLE}")
            cursor.execute(f"DELETE FROM {COHORT_TABLE}")
        cursor.execute(f"DELETE FROM {TABLE} WHERE 1 = 1 {total_scope}")
        factors = price_factors_cte()
        bounds = subscription_line_bounds(scope=scope, scope_params=[])
        if factors is None or bounds is None:  # no subscription line left in the scope
            _drop_empty(cursor)
            return
        months_sql, months_params = summary_months_cte(*bounds)
        cursor.execute(
            f"INSERT INTO {TABLE} ({SUMMARY_COLUMNS}) WITH {months_sql}, {factors} {price_rows_sql(scope=scope)}",
            months_params,
        )
        cursor.execute(
            f"INSERT INTO {TABLE} ({SUMMARY_COLUMNS}) "
            f"WITH {total_ctes(source=TABLE, scope=total_scope)} {TOTAL_ROWS_SQL} ORDER BY 2, 1, 5"
        )
        _month_totals_add(cursor, sign=1, scoped=scoped)
        _cohort_cells_add(cursor, sign=1, scoped=scoped)
        _drop_empty(cursor)


def _drop_empty(cursor: CursorWrapper) -> None:
    """A month or cohort cell left with no customer is removed (a currency whose last customer
    went is not listed with zeros)."""
    cursor.execute(f"DELETE FROM {MONTH_TOTAL_TABLE} WHERE customer_months = 0")
    cursor.execute(f"DELETE FROM {COHORT_TABLE} WHERE customers = 0")


def _month_totals_select(*, scope: str = "") -> str:
    """The month totals of the summary's customer total rows (the `scope`'s customers, on `c`),
    per mode, currency and month, each figure multiplied by a parameter (the sign)."""
    figures = ", ".join(f"%s * {expression}" for expression in ("COUNT(*)", *MOVEMENT_SUMS))
    return (
        f"SELECT cu.livemode, c.currency, c.month, {figures} "
        f"FROM {TABLE} c JOIN customers_customer cu ON cu.id = c.customer_id "
        f"WHERE c.price_id IS NULL {scope} GROUP BY cu.livemode, c.currency, c.month"
    )


_SIGNS = 1 + len(MOVEMENT_SUMS)  # the parameters of _month_totals_select


def _month_totals_add(cursor: CursorWrapper, *, sign: int, scoped: bool) -> None:
    """Add (sign 1) or take away (sign -1) the month totals of the scope's customer total rows.

    A scoped refresh takes its customers' old rows away before deleting them and adds the new
    ones after: the totals stay the sums of the table's rows without reading the rest of it.
    A customer's mode never changes, so the rows it was added under are the ones taken from."""
    columns = ("customer_months", *MONTH_TOTAL_FIGURES)
    updates = ", ".join(f"{name} = {MONTH_TOTAL_TABLE}.{name} + EXCLUDED.{name}" for name in columns)
    cursor.execute(
        f"INSERT INTO {MONTH_TOTAL_TABLE} (livemode, currency, month, {', '.join(columns)}) "
        f"{_month_totals_select(scope=_in_scope('c.customer_id') if scoped else '')} "
        f"ON CONFLICT (livemode, currency, month) DO UPDATE SET {updates}",
        [sign] * _SIGNS,
    )


def _cohort_cells_select(*, scope: str = "") -> str:
    """The cohort cells of the summary's customer totals (the `scope`'s customers, on `c`): per
    mode, currency, first paying month and later month, the customers still paying and their
    MRR, each multiplied by a parameter (the sign). A customer's first paying month is its
    total row marked `is_first` (one per customer and currency)."""
    return (
        "SELECT cu.livemode, c.currency, c.month, l.month, %s * COUNT(*), %s * SUM(l.mrr) "
        f"FROM {TABLE} c JOIN customers_customer cu ON cu.id = c.customer_id "
        f"JOIN {TABLE} l ON l.customer_id = c.customer_id AND l.currency = c.currency "
        "AND l.price_id IS NULL AND l.month >= c.month AND l.mrr > 0 "
        f"WHERE c.price_id IS NULL AND c.is_first {scope} GROUP BY cu.livemode, c.currency, c.month, l.month"
    )


def _cohort_cells_add(cursor: CursorWrapper, *, sign: int, scoped: bool) -> None:
    """Add (sign 1) or take away (sign -1) the scope's customers' cohort cells, as
    `_month_totals_add` does for the month totals."""
    cursor.execute(
        f"INSERT INTO {COHORT_TABLE} (livemode, currency, cohort, month, customers, mrr) "
        f"{_cohort_cells_select(scope=_in_scope('c.customer_id') if scoped else '')} "
        "ON CONFLICT (livemode, currency, cohort, month) DO UPDATE SET "
        f"customers = {COHORT_TABLE}.customers + EXCLUDED.customers, mrr = {COHORT_TABLE}.mrr + EXCLUDED.mrr",
        [sign, sign],
    )


def _month_label(month: int) -> str:
    return f"{month // 12}-{month % 12 + 1:02d}"


def _differences(
    *, expected_sql: str, params: list[int], table: str, keys: tuple[str, ...], figures: tuple[str, ...]
) -> list[str]:
    """Where the rows of `table` differ from what `expected_sql` computes from the summary
    (both: the key columns, then the figures; the keys start with livemode and currency, then
    month numbers)."""
    with connection.cursor() as cursor:
        cursor.execute(expected_sql, params)
        width = len(keys)
        expected = {(bool(row[0]), *row[1:width]): tuple(int(v or 0) for v in row[width:]) for row in cursor.fetchall()}
        cursor.execute(f"SELECT {', '.join((*keys, *figures))} FROM {table}")
        stored = {(bool(row[0]), *row[1:width]): tuple(int(v) for v in row[width:]) for row in cursor.fetchall()}
    differences = []
    for key in sorted(expected.keys() | stored.keys()):
        livemode, currency, *months = key
        where = " ".join((("live" if livemode else "test"), currency, *(_month_label(m) for m in months)))
        want, have = expected.get(key), stored.get(key)
        if want != have:
            wrong = [
                f"{name} {have[i] if have else '-'} (summary: {want[i] if want else '-'})"
                for i, name in enumerate(figures)
                if (have[i] if have else None) != (want[i] if want else None)
            ]
            differences.append(f"{where}: {', '.join(wrong)}")
    return differences


def mrr_month_total_differences() -> list[str]:
    """Where the stored month totals differ from the sums of the summary's rows (empty: none).

    For `verify_integrity`: the totals are kept by adding and taking away, so a write that
    went around the writer would leave them wrong without anything else noticing."""
    return _differences(
        expected_sql=_month_totals_select(),
        params=[1] * _SIGNS,
        table=MONTH_TOTAL_TABLE,
        keys=("livemode", "currency", "month"),
        figures=("customer_months", *MONTH_TOTAL_FIGURES),
    )


def mrr_cohort_differences() -> list[str]:
    """Where the stored cohort cells differ from the cells the summary's rows give (empty: none)."""
    return _differences(
        expected_sql=_cohort_cells_select(),
        params=[1, 1],
        table=COHORT_TABLE,
        keys=("livemode", "currency", "cohort", "month"),
        figures=("customers", "mrr"),
    )
