"""Metered usage: recording events idempotently and aggregating them per billing period.

An event belongs to the period [start, end) that contains its timestamp, so an event
stamped exactly at a period's end is billed with the next period. Usage is billed in
arrears: a renewal invoice carries the usage of the period that just ended.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import NamedTuple, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Aggregate, Count, Max, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.limits import MAX_USAGE_VALUE
from billing.models import Meter, Price, UsageEvent, UsageEventKey, UsageRollup
from billing.pricing import PercentageRule, percentage_amount
from billing.selectors import price_amount_for
from billing.services.usage_rollups import (
    StoredEvent,
    month_buckets,
    rollup_buckets,
    usage_month_rollups_add,
    usage_rollups_add,
)
from config import clock
from config.bulk import allocate_ids, binary_cursor, copy_rows, copy_supported
from config.errors import DomainError
from config.events.log import EventRow, events_record_bulk
from config.modes import scope_to_mode
from config.money import round_fraction
from customers.models import Customer

MAX_BATCH_SIZE = 1000
# Event properties (issue 16): few short string values, so filters stay cheap and rows small.
MAX_EVENT_PROPERTIES = 10
MAX_PROPERTY_KEY_LENGTH = 40
MAX_PROPERTY_VALUE_LENGTH = 100
# Clocks drift: an event a little ahead of our clock is accepted, one far ahead is a bug.
FUTURE_TOLERANCE = timedelta(minutes=5)
# Windows per aggregation query: keeps the OR-ed conditions below SQLite's expression depth limit.
WINDOWS_PER_QUERY = 200

_VALUE_FIELD = UsageEvent._meta.get_field("value")
# CharFields: their max_length is set (the stubs type every field's as int | None).
_EXTERNAL_ID_MAX = cast(int, UsageEvent._meta.get_field("external_id").max_length)
_UNIQUE_VALUE_MAX = cast(int, UsageEvent._meta.get_field("unique_value").max_length)


@dataclass(frozen=True, slots=True)
class UsageEventInput:
    customer_id: int
    meter_key: str
    external_id: str  # the integrator's id: sending the same event twice records it once
    timestamp: datetime
    value: Decimal | int = Decimal(1)
    unique_value: str = ""  # what a unique_count meter counts (e.g. a user id)
    properties: Mapping[str, object] | None = None  # dimensions (issue 16): {"region": "eu"}


@dataclass(frozen=True, slots=True)
class UsageEventError:
    index: int  # position in the batch
    external_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class UsageBatchResult:
    accepted: int  # new events stored
    duplicates: int  # events already known (same meter and external id): not errors
    errors: tuple[UsageEventError, ...]


class UsageBatchTooLarge(DomainError, ValidationError):
    code = "batch_too_large"
    http_status = 400


def _check_value(value: object) -> tuple[Decimal | None, str | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return (
            None,
            "invalid_value",
            _("The value must be a number (int or Decimal), not %(type)s.") % {"type": type(value).__name__},
        )
    amount = Decimal(value)
    if not amount.is_finite():
        return None, "invalid_value", _("The value must be a finite number.")
    if amount < 0:
        return None, "negative_value", _("Usage cannot be negative (got %(value)s).") % {"value": amount}
    if amount > MAX_USAGE_VALUE:
        return (
            None,
            "out_of_bounds",
            _("One event's value is at most %(maximum)s.") % {"maximum": f"{MAX_USAGE_VALUE:,}"},
        )
    try:
        quantized = amount.quantize(Decimal(1).scaleb(-_VALUE_FIELD.decimal_places))
    except InvalidOperation:
        quantized = None
    integer_digits = _VALUE_FIELD.max_digits - _VALUE_FIELD.decimal_places
    if quantized is None or quantized != amount or quantized.adjusted() >= integer_digits:
        return (
            None,
            "invalid_value",
            _("The value has too many digits (at most %(int)s before and %(dec)s after the point).")
            % {
                "int": integer_digits,
                "dec": _VALUE_FIELD.decimal_places,
            },
        )
    return amount, None, None


def _properties_error(properties: object) -> str | None:
    """Why an event's properties are refused, or None: a flat object of short strings."""
    if properties is None:
        return None
    if not isinstance(properties, Mapping):
        return _("The properties must be an object.")
    if len(properties) > MAX_EVENT_PROPERTIES:
        return _("An event has at most %(max)s properties.") % {"max": MAX_EVENT_PROPERTIES}
    for key, value in properties.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_PROPERTY_KEY_LENGTH:
            return _("A property name has 1 to %(max)s characters.") % {"max": MAX_PROPERTY_KEY_LENGTH}
        if not isinstance(value, str) or len(value) > MAX_PROPERTY_VALUE_LENGTH or "\x00" in value:
            return _("A property value is a string of at most %(max)s characters.") % {"max": MAX_PROPERTY_VALUE_LENGTH}
    return None


def usage_retention_cutoff() -> datetime | None:
    """Events older than this are refused: their month's raw events may be dropped
    (TARIF_USAGE_RAW_RETENTION_DAYS; None keeps raw events forever)."""
    days = getattr(settings, "TARIF_USAGE_RAW_RETENTION_DAYS", None)
    return None if days is None else clock.now() - timedelta(days=days)


class UsageRow(NamedTuple):
    """One checked event, as ingestion stores it: a plain tuple, no model instance (COPY
    takes tuples; building 1,000 `UsageEvent` objects per batch cost more than the COPY)."""

    customer_id: int
    meter_id: int
    external_id: str
    value: Decimal
    unique_value: str
    timestamp: datetime
    properties: Mapping[str, object] | None


_EVENT_TABLE = UsageEvent._meta.db_table
# COPY's column order: the id (from the sequence), UsageRow's fields, then received time.
_EVENT_COLUMNS = (
    "id",
    "customer_id",
    "meter_id",
    "external_id",
    "value",
    "unique_value",
    "timestamp",
    "properties",
    "created_at",
)


def _usage_keys_claim(*, rows: Sequence[UsageRow]) -> set[tuple[int, str]]:
    """Insert the dedup keys of `rows` (distinct); return the (meter, id) pairs that were new.

    PostgreSQL: one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING. A
    concurrent batch inserting the same key makes this one wait for its commit, then skip
    it: an event is stored once, whichever batch wins. Keys are sent in key order (no deadlock).
    """
    if not rows:
        return set()
    ordered = sorted(rows, key=lambda row: (row.meter_id, row.external_id))
    if copy_supported():
        with binary_cursor() as cursor:  # the arrays travel in binary (%b), counted by query guards
            cursor.execute(
                f"INSERT INTO {UsageEventKey._meta.db_table} (meter_id, external_id, timestamp) "
                "SELECT * FROM unnest(%b::bigint[], %b::varchar[], %b::timestamptz[]) "
                "ON CONFLICT (meter_id, external_id) DO NOTHING RETURNING meter_id, external_id",
                [
                    [row.meter_id for row in ordered],
                    [row.external_id for row in ordered],
                    [row.timestamp for row in ordered],
                ],
            )
            return {(meter_id, external_id) for meter_id, external_id in cursor.fetchall()}
    # SQLite: writers are serialized by the database lock (transactions start IMMEDIATE).
    known = set(
        UsageEventKey.objects.filter(
            meter_id__in={row.meter_id for row in ordered}, external_id__in={row.external_id for row in ordered}
        ).values_list("meter_id", "external_id")
    )
    fresh = [row for row in ordered if (row.meter_id, row.external_id) not in known]
    UsageEventKey.objects.bulk_create(
        [UsageEventKey(meter_id=row.meter_id, external_id=row.external_id, timestamp=row.timestamp) for row in fresh]
    )
    return {(row.meter_id, row.external_id) for row in fresh}


def _usage_events_store(*, rows: list[UsageRow]) -> list[int]:
    """Store new events; return their ids (the rollups' `last` tie-break needs them):
    ids from the sequence and COPY into the partitioned table on PostgreSQL, `bulk_create` elsewhere."""
    if not rows:
        return []
    if copy_supported():
        ids = allocate_ids(model=UsageEvent, count=len(rows))
        received = timezone.now()
        texts: dict[object, str] = {}  # a batch has few distinct sets of properties: serialize each once

        def properties_text(properties: Mapping[str, object] | None) -> str:
            if not properties:
                return "{}"
            try:
                shape = tuple(properties.items())
                text = texts.get(shape)
                if text is None:
                    text = texts[shape] = json.dumps(properties)
                return text
            except TypeError:  # an unhashable value (written directly, not through the API's checks)
                return json.dumps(properties)

        copy_rows(
            table=_EVENT_TABLE,
            columns=_EVENT_COLUMNS,
            rows=((pk, *row[:6], properties_text(row.properties), received) for pk, row in zip(ids, rows, strict=True)),
        )
        return ids
    objects = [UsageEvent(**row._replace(properties=dict(row.properties or {}))._asdict()) for row in rows]
    UsageEvent.objects.bulk_create(objects, batch_size=500)
    return [event.pk for event in objects]


@transaction.atomic(savepoint=False)
def _usage_rows_insert(*, rows: Sequence[UsageRow]) -> list[tuple[int, UsageRow]]:
    """Keys, events and rollups of checked rows, in one transaction: the (id, row) stored,
    the first of each (meter, id) not known before."""
    first: dict[tuple[int, str], UsageRow] = {}
    for row in rows:
        first.setdefault((row.meter_id, row.external_id), row)
    fresh = _usage_keys_claim(rows=list(first.values()))
    new_rows = [row for identity, row in first.items() if identity in fresh]
    ids = _usage_events_store(rows=new_rows)
    buckets = rollup_buckets(
        events=(
            StoredEvent(pk, row.customer_id, row.meter_id, row.timestamp, row.value, row.properties)
            for pk, row in zip(ids, new_rows, strict=True)
        )
    )
    usage_rollups_add(buckets=buckets)
    usage_month_rollups_add(buckets=month_buckets(buckets=buckets))
    return list(zip(ids, new_rows, strict=True))


@transaction.atomic(savepoint=False)
def usage_events_insert(*, rows: Sequence[UsageEvent]) -> list[UsageEvent]:
    """Store usage events already checked (a seed, a benchmark, a test): their dedup keys,
    the events (COPY on PostgreSQL) and the rollups, in one transaction.

    Returns the events stored (their ids set): the first of each (meter, id) not known before.
    """
    by_identity: dict[tuple[int, str], UsageEvent] = {}
    checked: list[UsageRow] = []
    for event in rows:
        by_identity.setdefault((event.meter_id, event.external_id), event)
        checked.append(
            UsageRow(
                customer_id=event.customer_id,
                meter_id=event.meter_id,
                external_id=event.external_id,
                value=Decimal(event.value),
                unique_value=event.unique_value,
                timestamp=event.timestamp,
                properties=event.properties,
            )
        )
    stored: list[UsageEvent] = []
    for pk, row in _usage_rows_insert(rows=checked):
        event = by_identity[(row.meter_id, row.external_id)]
        event.pk = pk
        event._state.adding = False
        event._state.db = connection.alias
        stored.append(event)
    return stored


@transaction.atomic(savepoint=False)
def usage_events_record(*, events: Sequence[UsageEventInput]) -> UsageBatchResult:
    """Record up to MAX_BATCH_SIZE usage events; each bad event is reported, the others stored.

    Idempotent: an event whose (meter, external id) is already stored -- or appears
    earlier in the same batch -- counts as a duplicate and changes nothing. Two
    batches racing with the same event store it once (the key table's unique index decides).
    """
    if len(events) > MAX_BATCH_SIZE:
        raise UsageBatchTooLarge(
            _("Send at most %(max)s usage events per batch (got %(count)s).")
            % {"max": MAX_BATCH_SIZE, "count": len(events)},
            code="batch_too_large",
        )
    meters = {meter.key: meter for meter in Meter.objects.filter(key__in={event.meter_key for event in events})}
    # Through the API, a customer of the other mode is unknown (scoped to the calling key's mode).
    # Plain values, not model instances: building 1,000 customers was a seventh of a batch's time.
    # A customer's time is clock.now's: its test clock's frozen time, else the real time.
    real_now = clock.now()
    customers: dict[int, tuple[bool, datetime]] = {
        pk: (livemode, real_now if frozen_time is None else frozen_time)
        for pk, livemode, frozen_time in scope_to_mode(Customer.objects.all())
        .filter(pk__in={event.customer_id for event in events})
        .values_list("pk", "livemode", "test_clock__frozen_time")
    }
    errors: list[UsageEventError] = []
    checked: list[UsageRow] = []
    retention_cutoff = usage_retention_cutoff()
    unique_count = Meter.Aggregation.UNIQUE_COUNT

    def refuse(index: int, event: UsageEventInput, code: str, message: str) -> None:
        errors.append(UsageEventError(index=index, external_id=str(event.external_id), code=code, message=message))

    for index, event in enumerate(events):
        meter = meters.get(event.meter_key)
        customer = customers.get(event.customer_id)
        value, value_code, value_message = _check_value(event.value)
        external_id = event.external_id if isinstance(event.external_id, str) else ""
        timestamp = event.timestamp
        if not external_id or len(external_id) > _EXTERNAL_ID_MAX:
            refuse(index, event, "invalid_external_id", _("Each event needs an id of 1 to 100 characters."))
        elif meter is None:
            refuse(index, event, "unknown_meter", _("No meter has the key %(key)s.") % {"key": event.meter_key})
        elif customer is None:
            refuse(index, event, "unknown_customer", _("No customer has the id %(id)s.") % {"id": event.customer_id})
        elif value_code is not None:
            refuse(index, event, value_code, value_message or "")
        elif not isinstance(timestamp, datetime) or timestamp.utcoffset() is None:
            refuse(index, event, "naive_timestamp", _("The timestamp needs a time zone (UTC offset)."))
        elif timestamp > customer[1] + FUTURE_TOLERANCE:  # customer: (livemode, its now)
            refuse(index, event, "future_timestamp", _("The timestamp is in the future."))
        elif retention_cutoff is not None and timestamp < retention_cutoff:
            # Its month's raw events may be dropped already (issue 20): its period is invoiced.
            refuse(index, event, "too_old", _("The timestamp is older than the usage retention period."))
        elif len(event.unique_value) > _UNIQUE_VALUE_MAX:
            refuse(index, event, "invalid_unique_value", _("The unique value is longer than 200 characters."))
        elif meter.aggregation == unique_count and not event.unique_value:
            refuse(index, event, "missing_unique_value", _("A unique-count meter needs the value to count once."))
        elif (properties_message := _properties_error(event.properties)) is not None:
            refuse(index, event, "invalid_properties", properties_message)
        else:
            assert value is not None  # _check_value gives a value exactly when it gives no error code
            checked.append(
                UsageRow(
                    event.customer_id,
                    meter.pk,
                    external_id,
                    value,
                    event.unique_value,
                    timestamp,
                    event.properties or None,
                )
            )

    stored = _usage_rows_insert(rows=checked)
    duplicates = len(checked) - len(stored)

    # One event per customer per batch (the webhook catalogue's promise: docs/api.md), not per event.
    per_customer = Counter(row.customer_id for _pk, row in stored)
    events_record_bulk(
        rows=[
            EventRow(
                type="billing.meter_events.recorded",
                object_type="customer",
                object_id=customer_id,
                customer_id=customer_id,
                occurred_at=customers[customer_id][1],
                data={"events": count},
                livemode=customers[customer_id][0],
            )
            for customer_id, count in sorted(per_customer.items())
        ]
    )
    return UsageBatchResult(accepted=len(stored), duplicates=duplicates, errors=tuple(errors))


# -- aggregation -----------------------------------------------------------------


class UsageWindow(NamedTuple):
    """One customer's usage on one meter over [start, end).

    A NamedTuple: a plain tuple (customer_id, meter_id, start, end) is an equal key.
    """

    customer_id: int
    meter_id: int
    start: datetime
    end: datetime


class PriceUsageWindow(NamedTuple):
    """Usage of one price over [start, end): for prices that read their own events
    (issue 16: a usage filter selects some of the meter's events; percentage pricing
    needs each transaction). Other prices share their meter's UsageWindow."""

    customer_id: int
    meter_id: int
    start: datetime
    end: datetime
    price_id: int


UsageKey = UsageWindow | PriceUsageWindow


class TransactionUsage(Decimal):
    """Usage (the sum of the events' values) that also carries each event's value, in order,
    for percentage pricing. Arithmetic on it gives plain Decimals."""

    transactions: tuple[Decimal, ...] = ()

    @classmethod
    def of(cls, transactions: Sequence[Decimal]) -> TransactionUsage:
        usage = cls(sum(transactions, Decimal(0)))
        usage.transactions = tuple(transactions)
        return usage


def price_reads_own_events(price: Price) -> bool:
    return bool(price.usage_filter) or price.scheme == Price.Scheme.PERCENTAGE


def usage_key(*, customer_id: int, price: Price, start: datetime, end: datetime) -> UsageKey:
    """The key under which the usage of a metered `price` over [start, end) is read."""
    meter_id = price_meter_id(price=price)
    if price_reads_own_events(price):
        return PriceUsageWindow(customer_id, meter_id, start, end, price.pk)
    return UsageWindow(customer_id, meter_id, start, end)


def price_meter_id(*, price: Price) -> int:
    """The meter of a metered price (`Price.clean()` requires one)."""
    if price.meter_id is None:
        raise ValueError(f"Price {price.pk} is not metered.")
    return price.meter_id


def _window_q(window: UsageWindow, *, aggregation: str = "") -> Q:
    condition = Q(customer_id=window.customer_id, meter_id=window.meter_id, timestamp__lt=window.end)
    if aggregation == Meter.Aggregation.LATEST:
        return condition  # the latest value ever: events before the window count too
    return condition & Q(timestamp__gte=window.start)


def _since(start: datetime, aggregation: str) -> dict[str, datetime]:
    """The lower time bound of a window: none for a latest-ever meter (issue 16)."""
    return {} if aggregation == Meter.Aggregation.LATEST else {"timestamp__gte": start}


_SQL_AGGREGATES: dict[str, Callable[[], Aggregate]] = {
    Meter.Aggregation.SUM: lambda: Sum("value"),
    Meter.Aggregation.MAX: lambda: Max("value"),
    Meter.Aggregation.UNIQUE_COUNT: lambda: Count("unique_value", distinct=True),
}

# A (customer, meter) pair's last event: (timestamp, id, value); tuples compare in that order.
LastEvent = tuple[datetime, int, Decimal]


def _last_by_pair(
    rows: QuerySet[UsageEvent] | QuerySet[UsageRollup], *, timestamp: str, event_id: str, value: str
) -> dict[tuple[int, int], LastEvent]:
    """The latest (timestamp, then highest id) row per (customer, meter): two queries."""
    latest = rows.values_list("customer_id", "meter_id").annotate(latest=Max(timestamp)).order_by()
    last_q = Q()
    for customer_id, meter_id, moment in latest:
        last_q |= Q(customer_id=customer_id, meter_id=meter_id, **{timestamp: moment})
    if not last_q:
        return {}
    found: dict[tuple[int, int], LastEvent] = {}
    for customer_id, meter_id, moment, pk, amount in (
        rows.filter(last_q).order_by(event_id).values_list("customer_id", "meter_id", timestamp, event_id, value)
    ):
        found[(customer_id, meter_id)] = (moment, pk, Decimal(amount))
    return found


def _aggregate_by_pair(
    condition: Q, aggregation: str, *, base: QuerySet[UsageEvent] | None = None
) -> dict[tuple[int, int], Decimal]:
    """(customer id, meter id) -> aggregated value of the raw events matching `condition`."""
    events = (UsageEvent.objects.all() if base is None else base).filter(condition)
    if aggregation not in (Meter.Aggregation.LAST, Meter.Aggregation.LATEST):
        rows = events.values_list("customer_id", "meter_id").annotate(result=_SQL_AGGREGATES[aggregation]())
        return {(customer_id, meter_id): Decimal(result or 0) for customer_id, meter_id, result in rows.order_by()}
    # The last value: the latest timestamp per pair, then the value of that event
    # (the last one stored wins a tie).
    last = _last_by_pair(events, timestamp="timestamp", event_id="pk", value="value")
    return {pair: amount for pair, (_moment, _pk, amount) in last.items()}


# -- rollups (issue 20) ---------------------------------------------------------------

# (meter id, start, end) -> the customers whose usage over [start, end) is wanted.
Spans = Mapping[tuple[int, datetime, datetime], Sequence[int]]


def _day_start(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)


def _split_window(
    start: datetime, end: datetime, aggregation: str
) -> tuple[list[tuple[datetime | None, datetime]], tuple[date | None, date] | None]:
    """The raw parts and the whole UTC days of [start, end): raw events are read for the
    partial first and last days, rollups for the days in between. A latest-ever meter has
    no lower bound: every day before the end's day is read from rollups."""
    last_day = _day_start(end)
    if aggregation == Meter.Aggregation.LATEST:
        return ([(last_day, end)] if last_day < end else []), (None, last_day.date())
    first_day = _day_start(start)
    if first_day < start:
        first_day += timedelta(days=1)
    if first_day >= last_day:
        return [(start, end)], None
    raw: list[tuple[datetime | None, datetime]] = [(start, first_day)] if start < first_day else []
    if last_day < end:
        raw.append((last_day, end))
    days: tuple[date | None, date] = (first_day.date(), last_day.date())
    return raw, days


def _aggregate_spans(
    spans: Spans, aggregation: str, *, usage_filter: Mapping[str, Sequence[str]] | None = None, rollups: bool = True
) -> dict[tuple[int, int], Decimal]:
    """(customer, meter) -> usage over each span (a pair appears in one span only).

    With `rollups`, whole UTC days come from UsageRollup and raw events only fill the
    edges; unique counts always read raw events (a distinct count does not add up).
    Without, every value comes from raw events: the reference the rollups are tested against.
    """
    events = UsageEvent.objects.all() if not usage_filter else filtered_events(usage_filter=usage_filter)
    if not rollups or aggregation == Meter.Aggregation.UNIQUE_COUNT:
        condition = Q()
        for (meter_id, start, end), customer_ids in spans.items():
            condition |= Q(
                meter_id=meter_id, timestamp__lt=end, customer_id__in=customer_ids, **_since(start, aggregation)
            )
        return _aggregate_by_pair(condition, aggregation, base=events) if condition else {}
    raw_q = Q()
    rollup_q = Q()
    for (meter_id, start, end), customer_ids in spans.items():
        raw_parts, days = _split_window(start, end, aggregation)
        for raw_start, raw_end in raw_parts:
            since = {} if raw_start is None else {"timestamp__gte": raw_start}
            raw_q |= Q(meter_id=meter_id, customer_id__in=customer_ids, timestamp__lt=raw_end, **since)
        if days is not None:
            first, stop = days
            from_day = {} if first is None else {"day__gte": first}
            rollup_q |= Q(meter_id=meter_id, customer_id__in=customer_ids, day__lt=stop, **from_day)
    buckets = _filtered(UsageRollup.objects.all(), usage_filter).filter(rollup_q) if rollup_q else None
    if aggregation in (Meter.Aggregation.LAST, Meter.Aggregation.LATEST):
        last = _last_by_pair(events.filter(raw_q), timestamp="timestamp", event_id="pk", value="value") if raw_q else {}
        if buckets is not None:
            for pair, candidate in _last_by_pair(
                buckets, timestamp="last_timestamp", event_id="last_event_id", value="last_value"
            ).items():
                if pair not in last or candidate[:2] > last[pair][:2]:
                    last[pair] = candidate
        return {pair: amount for pair, (_moment, _pk, amount) in last.items()}
    result = _aggregate_by_pair(raw_q, aggregation, base=events) if raw_q else {}
    if buckets is not None:
        column = Sum("value_sum") if aggregation == Meter.Aggregation.SUM else Max("value_max")
        rows = buckets.values_list("customer_id", "meter_id").annotate(result=column).order_by()
        for customer_id, meter_id, value in rows:
            pair = (customer_id, meter_id)
            amount = Decimal(value or 0)
            if aggregation == Meter.Aggregation.SUM:
                result[pair] = result.get(pair, Decimal(0)) + amount
            else:
                result[pair] = max(result.get(pair, Decimal(0)), amount)
    return result


def usage_aggregate(*, customer_id: int, meter: Meter, start: datetime, end: datetime) -> Decimal:
    """A customer's usage on `meter` over [start, end), aggregated as the meter says."""
    spans = {(meter.pk, start, end): [customer_id]}
    return _aggregate_spans(spans, meter.aggregation).get((customer_id, meter.pk), Decimal(0))


def usage_aggregate_bulk(
    *, meter_ids: Iterable[int], customer_ids: Iterable[int], start: datetime, end: datetime
) -> dict[tuple[int, int], Decimal]:
    """Usage of every (customer, meter) pair over one shared window, keyed (customer_id, meter_id).

    A few queries per aggregation kind among the meters; pairs without events map to Decimal(0).
    """
    customer_ids = list(customer_ids)
    meters = Meter.objects.in_bulk(list(meter_ids))
    result = {(customer_id, meter_id): Decimal(0) for customer_id in customer_ids for meter_id in meters}
    by_kind: dict[str, list[int]] = defaultdict(list)
    for meter in meters.values():
        by_kind[meter.aggregation].append(meter.pk)
    for aggregation, ids in by_kind.items():
        result.update(_aggregate_spans({(meter_id, start, end): customer_ids for meter_id in ids}, aggregation))
    return result


def _filtered(
    rows: QuerySet[UsageEvent] | QuerySet[UsageRollup], usage_filter: Mapping[str, Sequence[str]] | None
) -> QuerySet:
    """Rows (events or rollups: both keep the properties) matching a price's filter."""
    for position, (key, values) in enumerate(sorted((usage_filter or {}).items())):
        # KeyTextTransform: the property name is data, never parsed as a lookup path.
        alias = f"dimension_{position}"
        rows = rows.alias(**{alias: KeyTextTransform(key, "properties")}).filter(**{f"{alias}__in": list(values)})
    return rows


def filtered_events(*, usage_filter: Mapping[str, Sequence[str]]) -> QuerySet[UsageEvent]:
    """Usage events whose properties match a price's filter (every key, one of its values)."""
    return _filtered(UsageEvent.objects.all(), usage_filter)


def _price_windows_usage(
    windows: Sequence[PriceUsageWindow], *, rollups: bool = True
) -> dict[PriceUsageWindow, Decimal]:
    """Usage of prices that read their own events: one to four queries per window."""
    prices = Price.objects.select_related("meter").in_bulk({window.price_id for window in windows})
    result: dict[PriceUsageWindow, Decimal] = {}
    for window in windows:
        price = prices[window.price_id]
        meter = cast(Meter, price.meter)
        if price.scheme == Price.Scheme.PERCENTAGE:
            # Each transaction counts on its own: raw events only.
            base = filtered_events(usage_filter=price.usage_filter or {})
            condition = _window_q(UsageWindow(*window[:4]), aggregation=meter.aggregation)
            values = base.filter(condition).order_by("timestamp", "pk").values_list("value", flat=True)
            result[window] = TransactionUsage.of([Decimal(value) for value in values])
            continue
        spans = {(window.meter_id, window.start, window.end): [window.customer_id]}
        aggregated = _aggregate_spans(spans, meter.aggregation, usage_filter=price.usage_filter or {}, rollups=rollups)
        result[window] = aggregated.get((window.customer_id, window.meter_id), Decimal(0))
    return result


def usage_aggregate_windows(
    *,
    windows: Iterable[UsageKey | tuple[int, int, datetime, datetime]],
    meters: Mapping[int, Meter] | None = None,
    rollups: bool = True,
) -> dict[UsageKey, Decimal]:
    """Usage for many (customer, meter, start, end) windows: periods may differ per subscription.

    Windows are answered WINDOWS_PER_QUERY at a time, a few queries per aggregation kind
    in each batch (rollups for whole days, raw events for the edges), so a chunk of 1,000
    subscriptions on one meter costs about ten queries. Windows without events map to
    Decimal(0). `rollups=False` reads raw events only (the reference, for tests).
    """
    price_windows: list[PriceUsageWindow] = []
    meter_windows: list[UsageWindow] = []
    for window in windows:
        if len(window) == 5:
            price_windows.append(PriceUsageWindow(*window))
        else:
            meter_windows.append(UsageWindow(*window))
    unique_windows = list(dict.fromkeys(meter_windows))
    if meters is None:
        meters = Meter.objects.in_bulk({window.meter_id for window in unique_windows})
    result: dict[UsageKey, Decimal] = dict.fromkeys(unique_windows, Decimal(0))
    if price_windows:
        for price_window, value in _price_windows_usage(list(dict.fromkeys(price_windows)), rollups=rollups).items():
            result[price_window] = value
    # A query groups by (customer, meter), so a batch may hold only one window per pair.
    rounds: list[list[UsageWindow]] = []
    occurrences: Counter[tuple[int, int]] = Counter()
    for window in unique_windows:
        pair = (window.customer_id, window.meter_id)
        if occurrences[pair] == len(rounds):
            rounds.append([])
        rounds[occurrences[pair]].append(window)
        occurrences[pair] += 1
    for round_windows in rounds:
        for offset in range(0, len(round_windows), WINDOWS_PER_QUERY):
            batch = round_windows[offset : offset + WINDOWS_PER_QUERY]
            by_kind: dict[str, list[UsageWindow]] = defaultdict(list)
            for window in batch:
                by_kind[meters[window.meter_id].aggregation].append(window)
            for aggregation, kind_windows in by_kind.items():
                # Windows of a billing-run chunk mostly share their period: one
                # `customer_id IN (...)` per (meter, start, end) keeps the SQL (and the
                # time Django spends building it) small.
                customers_by_span: dict[tuple[int, datetime, datetime], list[int]] = defaultdict(list)
                for window in kind_windows:
                    customers_by_span[(window.meter_id, window.start, window.end)].append(window.customer_id)
                values = _aggregate_spans(customers_by_span, aggregation, rollups=rollups)
                for window in kind_windows:
                    result[window] = values.get((window.customer_id, window.meter_id), Decimal(0))
    return result


def usage_for_periods(*, wanted: Iterable[UsageKey | tuple[int, int, datetime, datetime]]) -> dict[UsageKey, Decimal]:
    """`usage_aggregate_windows` under the name the billing run uses: keys are
    (customer_id, meter_id, start, end), the `usage` argument of `renewal_draft`."""
    return usage_aggregate_windows(windows=wanted)


# -- pricing usage -----------------------------------------------------------------


def price_percentage_rule(price: Price) -> PercentageRule:
    return PercentageRule(
        rate=price.percentage_rate or Decimal(0),
        fixed_amount=price.fixed_amount,
        free_events=price.free_units,
        free_amount=price.free_amount,
        per_transaction_min=price.per_transaction_min_amount,
        per_transaction_max=price.per_transaction_max_amount,
    )


def usage_charge_amount(*, price: Price, quantity: Decimal) -> int:
    """What `quantity` units of metered usage cost at `price`, in minor units (pure).

    Per-unit prices charge fractional usage exactly (1.5 GB at 100 = 150); tiered and
    package prices count whole units, a started unit counting as one.
    """
    if quantity < 0:
        raise ValueError("usage cannot be negative")
    if price.scheme == Price.Scheme.PERCENTAGE:
        # A plain Decimal (no transactions known) counts as one transaction of that amount.
        transactions = quantity.transactions if isinstance(quantity, TransactionUsage) else (quantity,)
        return percentage_amount(transactions=transactions, rule=price_percentage_rule(price))
    if price.scheme == Price.Scheme.PER_UNIT:
        return round_fraction(Fraction(quantity) * Fraction(price.unit_amount or 0))
    return price_amount_for(price=price, quantity=math.ceil(quantity))
