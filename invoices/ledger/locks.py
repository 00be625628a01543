"""Row locks of the ledger, in the one lock order (docs/billing.md "Lock order").

Postings come last in a money movement's transaction (after the number sequence of the
document they post): the month's accounting period (shared by postings, exclusive for a
close), then the journal's entry-number sequence, held until commit like the documents'.
"""

from __future__ import annotations

from datetime import date

from django.db import connection
from django.db.models import QuerySet

from config.locking import LockRank, lock_helper, note_lock
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
    Missing months are created open first (a row to lock).
    """
    if not months:
        return {}
    AccountingPeriod.objects.bulk_create(
        [AccountingPeriod(brand_id=brand_id, livemode=livemode, month=month) for month in sorted(set(months))],
        ignore_conflicts=True,
    )
    queryset = AccountingPeriod.objects.filter(brand_id=brand_id, livemode=livemode, month__in=months).order_by("pk")
    if connection.vendor != "postgresql":
        return dict(queryset.values_list("month", "state"))
    sql, params = queryset.values_list("pk", "month", "state").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR SHARE", params)
        rows = cursor.fetchall()
    note_lock(LockRank.ACCOUNTING_PERIOD, keys=[pk for pk, _month, _state in rows])
    return {month: state for _pk, month, state in rows}
