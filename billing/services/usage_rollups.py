"""Usage rollups (issue 20): usage per customer, meter, UTC day and set of properties.

Written at ingestion, in the transaction that stores the events, with one
INSERT ... ON CONFLICT DO UPDATE: counts and sums add up, maxima keep the larger,
and the day's last event (latest timestamp, then the last stored: the highest id)
replaces the stored one only when it is later. Buckets are sent in key order so two
batches touching the same buckets lock them in the same order (no deadlock).

docs/usage-at-scale.md says which aggregations read rollups and which read raw events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction

from billing.models import UsageMonthRollup, UsageRollup
from config.bulk import binary_cursor


def dimensions_hash(properties: Mapping[str, object] | None) -> str:
    """The bucket key of a set of event properties: md5 of their canonical JSON.

    The migration that builds the first rollups (billing 0023) keeps a copy of this
    function: change both together or not at all.
    """
    canonical = json.dumps(dict(properties or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(canonical.encode(), usedforsecurity=False).hexdigest()


@dataclass(slots=True)
class RollupBucket:
    customer_id: int
    meter_id: int
    day: date
    dimensions_hash: str
    properties: dict[str, object]
    event_count: int
    value_sum: Decimal
    value_max: Decimal
    last_timestamp: datetime
    last_event_id: int
    last_value: Decimal


class StoredEvent(NamedTuple):
    """An event as stored (its id set: the id breaks ties of `last`), what a rollup adds up."""

    event_id: int
    customer_id: int
    meter_id: int
    timestamp: datetime
    value: Decimal
    properties: Mapping[str, object] | None


def rollup_buckets(*, events: Iterable[StoredEvent]) -> list[RollupBucket]:
    """The rollup increments of stored events, in key order, in one pass.

    A batch has few distinct sets of properties: each is hashed once (the canonical JSON
    and md5 per event were a tenth of the ingestion's Python time)."""
    buckets: dict[tuple[int, int, date, str], RollupBucket] = {}
    digests: dict[tuple[tuple[str, object], ...], str] = {}
    for event_id, customer_id, meter_id, moment, value, properties in events:
        timestamp = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
        day = timestamp.date()
        shape = tuple(sorted(properties.items())) if properties else ()
        try:
            digest = digests.get(shape)
            if digest is None:
                digest = digests[shape] = dimensions_hash(properties)
        except TypeError:  # an unhashable value (written directly, not through the API's checks)
            digest = dimensions_hash(properties)
        key = (customer_id, meter_id, day, digest)
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = RollupBucket(
                customer_id=customer_id,
                meter_id=meter_id,
                day=day,
                dimensions_hash=digest,
                properties=dict(properties or {}),
                event_count=1,
                value_sum=value,
                value_max=value,
                last_timestamp=timestamp,
                last_event_id=event_id,
                last_value=value,
            )
        else:  # RollupBucket.add, inlined: this loop runs once per event
            bucket.event_count += 1
            bucket.value_sum += value
            if value > bucket.value_max:
                bucket.value_max = value
            if (timestamp, event_id) > (bucket.last_timestamp, bucket.last_event_id):
                bucket.last_timestamp, bucket.last_event_id, bucket.last_value = timestamp, event_id, value
    return [buckets[key] for key in sorted(buckets)]


_TABLE = UsageRollup._meta.db_table
_COLUMNS = (
    "customer_id, meter_id, day, dimensions_hash, properties, event_count, value_sum, value_max, "
    "last_timestamp, last_event_id, last_value"
)
_LATER = (
    f"(excluded.last_timestamp > {_TABLE}.last_timestamp OR "
    f"(excluded.last_timestamp = {_TABLE}.last_timestamp AND excluded.last_event_id > {_TABLE}.last_event_id))"
)
_ON_CONFLICT = f"""
ON CONFLICT (customer_id, meter_id, day, dimensions_hash) DO UPDATE SET
    event_count = {_TABLE}.event_count + excluded.event_count,
    value_sum = {_TABLE}.value_sum + excluded.value_sum,
    value_max = CASE WHEN excluded.value_max > {_TABLE}.value_max THEN excluded.value_max ELSE {_TABLE}.value_max END,
    last_value = CASE WHEN {_LATER} THEN excluded.last_value ELSE {_TABLE}.last_value END,
    last_event_id = CASE WHEN {_LATER} THEN excluded.last_event_id ELSE {_TABLE}.last_event_id END,
    last_timestamp = CASE WHEN {_LATER} THEN excluded.last_timestamp ELSE {_TABLE}.last_timestamp END
"""


@transaction.atomic(savepoint=False)
def usage_rollups_add(*, buckets: list[RollupBucket]) -> None:
    """Add the increments to the rollups (called in the ingestion's transaction)."""
    if not buckets:
        return
    ops = connection.ops
    if connection.vendor == "postgresql":
        # One statement for the whole batch: arrays bound in binary (%b), unnested server-side.
        with binary_cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_TABLE} ({_COLUMNS}) SELECT * FROM unnest("
                "%b::bigint[], %b::bigint[], %b::date[], %b::varchar[], %b::jsonb[], %b::bigint[], "
                "%b::numeric[], %b::numeric[], %b::timestamptz[], %b::bigint[], %b::numeric[])" + _ON_CONFLICT,
                [
                    [bucket.customer_id for bucket in buckets],
                    [bucket.meter_id for bucket in buckets],
                    [bucket.day for bucket in buckets],
                    [bucket.dimensions_hash for bucket in buckets],
                    [json.dumps(bucket.properties) for bucket in buckets],
                    [bucket.event_count for bucket in buckets],
                    [bucket.value_sum for bucket in buckets],
                    [bucket.value_max for bucket in buckets],
                    [bucket.last_timestamp for bucket in buckets],
                    [bucket.last_event_id for bucket in buckets],
                    [bucket.last_value for bucket in buckets],
                ],
            )
        return
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {_TABLE} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)" + _ON_CONFLICT,
            [
                (
                    bucket.customer_id,
                    bucket.meter_id,
                    ops.adapt_datefield_value(bucket.day),
                    bucket.dimensions_hash,
                    json.dumps(bucket.properties),
                    bucket.event_count,
                    str(bucket.value_sum),
                    str(bucket.value_max),
                    ops.adapt_datetimefield_value(bucket.last_timestamp),
                    bucket.last_event_id,
                    str(bucket.last_value),
                )
                for bucket in buckets
            ],
        )


# -- Month grain (issue 20 item 7) ----------------------------------------------------------

_MONTH_TABLE = UsageMonthRollup._meta.db_table
_MONTH_COLUMNS = "meter_id, month, customer_id, event_count, value_sum, value_max"
_MONTH_ON_CONFLICT = f"""
ON CONFLICT (meter_id, month, customer_id) DO UPDATE SET
    event_count = {_MONTH_TABLE}.event_count + excluded.event_count,
    value_sum = {_MONTH_TABLE}.value_sum + excluded.value_sum,
    value_max = CASE WHEN excluded.value_max > {_MONTH_TABLE}.value_max
        THEN excluded.value_max ELSE {_MONTH_TABLE}.value_max END
"""


class MonthBucket(NamedTuple):
    meter_id: int
    month: date  # first day of the UTC month
    customer_id: int
    event_count: int
    value_sum: Decimal
    value_max: Decimal


def month_buckets(*, buckets: Iterable[RollupBucket]) -> list[MonthBucket]:
    """The daily increments summed per meter, UTC month and customer, in key order (the lock
    order of the upsert: two batches touching the same months never deadlock)."""
    months: dict[tuple[int, date, int], list[object]] = {}
    for bucket in buckets:
        key = (bucket.meter_id, bucket.day.replace(day=1), bucket.customer_id)
        total = months.get(key)
        if total is None:
            months[key] = [bucket.event_count, bucket.value_sum, bucket.value_max]
        else:
            total[0] += bucket.event_count  # type: ignore[operator]
            total[1] += bucket.value_sum  # type: ignore[operator]
            if bucket.value_max > total[2]:  # type: ignore[operator]
                total[2] = bucket.value_max
    return [MonthBucket(*key, *months[key]) for key in sorted(months)]  # type: ignore[arg-type]


@transaction.atomic(savepoint=False)
def usage_month_rollups_add(*, buckets: list[MonthBucket]) -> None:
    """Add the month increments (called in the ingestion's transaction, after the daily rollups)."""
    if not buckets:
        return
    if connection.vendor == "postgresql":
        with binary_cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_MONTH_TABLE} ({_MONTH_COLUMNS}) SELECT * FROM unnest("
                "%b::bigint[], %b::date[], %b::bigint[], %b::bigint[], %b::numeric[], %b::numeric[])"
                + _MONTH_ON_CONFLICT,
                [
                    [bucket.meter_id for bucket in buckets],
                    [bucket.month for bucket in buckets],
                    [bucket.customer_id for bucket in buckets],
                    [bucket.event_count for bucket in buckets],
                    [bucket.value_sum for bucket in buckets],
                    [bucket.value_max for bucket in buckets],
                ],
            )
        return
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {_MONTH_TABLE} ({_MONTH_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)" + _MONTH_ON_CONFLICT,
            [
                (
                    bucket.meter_id,
                    ops.adapt_datefield_value(bucket.month),
                    bucket.customer_id,
                    bucket.event_count,
                    str(bucket.value_sum),
                    str(bucket.value_max),
                )
                for bucket in buckets
            ],
        )


# PostgreSQL: the month grain of every daily rollup, set-based (the migration's backfill, bench/dataset.py).
MONTH_ROLLUPS_FROM_DAILY_POSTGRESQL = (
    f"INSERT INTO {_MONTH_TABLE} ({_MONTH_COLUMNS}) "
    "SELECT meter_id, CAST(date_trunc('month', day) AS date), customer_id, SUM(event_count), SUM(value_sum), "
    f"MAX(value_max) FROM {_TABLE} GROUP BY meter_id, CAST(date_trunc('month', day) AS date), customer_id"
)
