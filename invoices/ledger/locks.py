"""Row locks of the ledger, in the one lock order (docs/billing.md "Lock order").

Postings take no exclusive lock: they hold the month's accounting period row in share mode
(as the PostgreSQL trigger does). Entry numbers are given at validation, which alone locks
the journal's sequence (after the period, for a close), in its own transaction. The share-mode
helpers are outside the checked order (see `accounting_periods_share`).
"""

from __future__ import annotations

from datetime import date

from django.db import connection
from django.db.models import QuerySet

from config.locking import LockRank, lock_helper
from invoices.ledger.models import AccountingPeriod, JournalSequence, RevenueSchedule


@lock_helper(LockRank.REVENUE_SCHEDULE)
def revenue_schedules_claim_qs(queryset: QuerySet[RevenueSchedule]) -> QuerySet[RevenueSchedule]:
    """The deferred-revenue schedules a recognition run takes (SKIP LOCKED: two runs share the
    work); their entries are posted after, under the period and journal locks."""
    return queryset.select_for_update(of=("self",), skip_locked=True).order_by("pk")


@lock_helper(LockRank.ACCOUNTING_PERIOD)
def accounting_period_qs_for_update() -> QuerySet[AccountingPeriod]:
    return AccountingPeriod.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.JOURNAL_SEQUENCE)
def journal_sequence_qs_for_update() -> QuerySet[JournalSequence]:
    return JournalSequence.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.ACCOUNTING_PERIOD)
def accounting_periods_share(*, brand_id: int, livemode: bool, months: list[date]) -> dict[date, str]:
    """The state of the given months, locked FOR SHARE on PostgreSQL (what the trigger takes).

    Shared: postings of one month run side by side; a close (FOR UPDATE) waits for them and
    they wait for it, so a posting either commits before the close or sees the month closed.
    Missing months are created open first (a row to lock; the daily validation creates the
    current and next months ahead, so this seldom inserts). That insert is not a share lock: it
    holds the month's unique key until commit, so a document's number series lock is taken after
    it, never before (`ledger_brand_ready` runs it ahead of the lock).

    Not noted for the lock-order checker: a share lock conflicts only with the close's
    exclusive lock, and a close's transaction locks nothing a money movement holds (period, then the
    journal sequences and unvalidated entries, which no money movement locks). So a money
    movement may take it and then lock more rows (a transaction that moves money twice)
    without any possible wait cycle; PostgreSQL grants a share lock next to another one even
    when a close is queued for the row.
    """
    if not months:
        return {}
    AccountingPeriod.objects.create_missing(brand_id=brand_id, livemodes=[livemode], months=months)
    queryset = AccountingPeriod.objects.filter(brand_id=brand_id, livemode=livemode, month__in=months).order_by("pk")
    if connection.vendor != "postgresql":
        return dict(queryset.values_list("month", "state"))
    sql, params = queryset.values_list("pk", "month", "state").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR SHARE", params)
        rows = cursor.fetchall()
    return {month: state for _pk, month, state in rows}


@lock_helper(LockRank.ACCOUNTING_PERIOD)
def accounting_period_state_share(*, brand_id: int, livemode: bool, month: date) -> str | None:
    """One month's state, its row held in share mode on PostgreSQL (None: no row, an open month).

    For a document or payment dated in that month (shared like a posting's, outside the lock
    order for the same reason: see `accounting_periods_share`)."""
    queryset = AccountingPeriod.objects.filter(brand_id=brand_id, livemode=livemode, month=month)
    if connection.vendor != "postgresql":
        return queryset.values_list("state", flat=True).first()
    sql, params = queryset.values_list("state").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR SHARE", params)
        row = cursor.fetchone()
    return row[0] if row else None
