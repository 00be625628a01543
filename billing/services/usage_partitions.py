"""Monthly partitions of usage events on PostgreSQL, and the retention of raw events (issue 20).

`billing_usageevent` is partitioned by range of `timestamp`, one partition per UTC
month (`billing_usageevent_pYYYY_MM`), plus the table that existed before (attached
as the first partition, `billing_usageevent_legacy`) and a DEFAULT partition that
catches events no month partition covers (a test clock far ahead, a late beat task).

- `usage_partitions_ensure` creates the coming months ahead. A month whose events
  already sit in the DEFAULT partition is created as a plain table, filled with those
  events (moved out of DEFAULT), then attached: the DEFAULT partition is locked for
  that short transaction only.
- `usage_partitions_drop_expired` drops (DETACH + DROP) the month partitions older than
  TARIF_USAGE_RAW_RETENTION_DAYS once every event of the month is in the rollups and
  every subscription with usage that month has been invoiced past it; otherwise the
  month is kept and the reason reported. Rollups are kept; the month's dedup keys go
  (ingestion refuses events older than the retention anyway).

SQLite keeps one plain table: both services do nothing there. docs/usage-at-scale.md.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Exists, OuterRef, Sum

from billing.locks import usage_default_partition_lock, usage_partitions_lock
from billing.models import Subscription, SubscriptionItem, UsageEvent, UsageEventKey, UsageRollup
from config import clock
from config.ops.db_roles import owner_alias

logger = logging.getLogger(__name__)

EVENTS = UsageEvent._meta.db_table
DEFAULT_PARTITION = f"{EVENTS}_default"
_BOUND = re.compile(r"FOR VALUES FROM \((?:MINVALUE|'([^']+)')\) TO \((?:MAXVALUE|'([^']+)')\)")
# A subscription still open on a month's usage: billed in arrears at its period's end.
_SETTLED_STATUSES = (Subscription.Status.CANCELED,)


@dataclass(frozen=True, slots=True)
class UsagePartition:
    name: str
    start: datetime | None  # None: MINVALUE (the legacy partition)
    end: datetime | None  # None: the DEFAULT partition (or MAXVALUE)
    is_default: bool = False


@dataclass(frozen=True, slots=True)
class UsageRetentionResult:
    dropped: tuple[str, ...]
    kept: tuple[tuple[str, str], ...]  # (partition, why it was kept)


def partitioning_enabled(*, using: str = "default") -> bool:
    if connections[using].vendor != "postgresql":
        return False
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [EVENTS])
        return cursor.fetchone() is not None


def _parse(moment: str | None) -> datetime | None:
    return None if moment is None else datetime.fromisoformat(moment).astimezone(UTC)


def usage_partitions_list(*, using: str = "default") -> list[UsagePartition]:
    """The partitions of the usage events table, oldest first, the DEFAULT one last."""
    if not partitioning_enabled(using=using):
        return []
    with connections[using].cursor() as cursor:
        # Bounds are printed in the session's time zone: UTC for Django's connections.
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [EVENTS],
        )
        rows = cursor.fetchall()
    partitions: list[UsagePartition] = []
    for name, bound in rows:
        if bound == "DEFAULT":
            partitions.append(UsagePartition(name=name, start=None, end=None, is_default=True))
            continue
        match = _BOUND.match(bound)
        if match is None:
            raise ValueError(f"Unexpected partition bound {bound!r} for {name}")
        partitions.append(UsagePartition(name=name, start=_parse(match.group(1)), end=_parse(match.group(2))))
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(partitions, key=lambda p: (p.is_default, p.start or epoch))


def _month_start(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def _next_month(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def _covered(partitions: list[UsagePartition], start: datetime, end: datetime) -> bool:
    for partition in partitions:
        if partition.is_default:
            continue
        lower_ok = partition.start is None or partition.start < end
        upper_ok = partition.end is None or start < partition.end
        if lower_ok and upper_ok:
            return True
    return False


def usage_partitions_ensure(*, ahead: int = 3, at: datetime | None = None, using: str | None = None) -> list[str]:
    """Create the month partitions from `at`'s month (default: now) to `ahead` months
    after it, and the DEFAULT partition if missing; returns the created names. Idempotent.

    DDL: runs as the tables' owner (`using`, default the `migrator` alias when configured):
    the application's role may not create tables (docs/security.md)."""
    using = using or owner_alias()
    if not partitioning_enabled(using=using):
        return []
    if ahead < 0:
        raise ValueError("ahead must be zero or more")
    created: list[str] = []
    month = _month_start(at or clock.system_now())
    for _step in range(ahead + 1):
        end = _next_month(month)
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            usage_partitions_lock(using=using)
            partitions = usage_partitions_list(using=using)
            if not any(partition.is_default for partition in partitions):
                cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {EVENTS} DEFAULT")
                created.append(DEFAULT_PARTITION)
            if not _covered(partitions, month, end):
                name = f"{EVENTS}_p{month:%Y_%m}"
                # No new event lands in DEFAULT while its rows of this month move out.
                usage_default_partition_lock(using=using, table=DEFAULT_PARTITION)
                cursor.execute(f"CREATE TABLE {name} (LIKE {EVENTS} INCLUDING DEFAULTS)")
                cursor.execute(
                    f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE timestamp >= %s AND timestamp < %s "
                    f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                    [month, end],
                )
                cursor.execute(
                    f"ALTER TABLE {EVENTS} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [month, end]
                )
                created.append(name)
        month = end
    if created:
        logger.info("usage partitions created: %s", ", ".join(created))
    return created


def _unsettled_reason(partition: UsagePartition, *, using: str) -> str | None:
    """Why a partition's raw events must stay, or None when they may go."""
    assert partition.end is not None
    days = {"day__lt": partition.end.date()}
    if partition.start is not None:
        days["day__gte"] = partition.start.date()
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {connections[using].ops.quote_name(partition.name)}")
        raw_count = cursor.fetchone()[0]
    rolled_up = UsageRollup.objects.using(using).filter(**days).aggregate(events=Sum("event_count"))["events"] or 0
    if raw_count != rolled_up:
        return f"rollups hold {rolled_up} events, the partition {raw_count}"
    customers_with_usage = UsageRollup.objects.using(using).filter(**days).values("customer_id")
    metered = SubscriptionItem.objects.filter(subscription_id=OuterRef("pk"), price__meter__isnull=False)
    open_subscriptions = (
        Subscription.objects.using(using)
        .filter(customer_id__in=customers_with_usage, current_period_start__lt=partition.end)
        .exclude(status__in=_SETTLED_STATUSES)
        .filter(Exists(metered))
    )
    pending = open_subscriptions.count()
    if pending:
        return f"{pending} subscription(s) with usage in it not invoiced past its end"
    return None


def usage_partitions_drop_expired(*, at: datetime | None = None, using: str | None = None) -> UsageRetentionResult:
    """Drop the raw-event partitions that ended more than TARIF_USAGE_RAW_RETENTION_DAYS
    ago, when they are rolled up and invoiced; rollups stay. Without the setting: nothing.
    Runs as the tables' owner, like `usage_partitions_ensure`."""
    using = using or owner_alias()
    days = getattr(settings, "TARIF_USAGE_RAW_RETENTION_DAYS", None)
    if days is None or not partitioning_enabled(using=using):
        return UsageRetentionResult(dropped=(), kept=())
    cutoff = (at or clock.system_now()) - timedelta(days=days)
    dropped: list[str] = []
    kept: list[tuple[str, str]] = []
    for partition in usage_partitions_list(using=using):
        if partition.is_default or partition.end is None or partition.end > cutoff:
            continue
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            usage_partitions_lock(using=using)
            reason = _unsettled_reason(partition, using=using)
            if reason is not None:
                kept.append((partition.name, reason))
                continue
            # Deferred foreign-key checks still pending in this transaction would block the
            # DROP (only when called inside a larger transaction, as tests do): run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {EVENTS} DETACH PARTITION {partition.name}")
            cursor.execute(f"DROP TABLE {partition.name}")
            keys = UsageEventKey.objects.using(using).filter(timestamp__lt=partition.end)
            if partition.start is not None:
                keys = keys.filter(timestamp__gte=partition.start)
            keys.delete()
            dropped.append(partition.name)
    for name, reason in kept:
        logger.warning("usage partition %s kept past its retention: %s", name, reason)
    return UsageRetentionResult(dropped=tuple(dropped), kept=tuple(kept))
