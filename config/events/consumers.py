"""The one way to consume the domain event log: a cursor, a look-back, and dedupe by event id.

Every consumer (webhook endpoints, customer notifications, feedback survey triggers) calls
`events_consume` with its `EventConsumer` and a handler. One pass, in one transaction:

1. lock the consumer's `EventCursor` (config/events/locks.py), so two runs take turns;
2. **look back**: an event id is taken before its transaction commits, so a slow
   transaction can commit an id *below* the cursor after the cursor passed it. The cursor
   remembers the ids it passed without seeing (`gaps`); each pass looks for those again,
   for `lookback` (after that the id is taken as rolled back and forgotten);
3. read the new events after the cursor, in id order, at most `batch`, leaving events
   younger than `settle` for the next pass (a consumer that prefers to wait);
4. hand the late and the new events of the consumer's types to the handler, in id order;
5. move the cursor past the new events, record the ids it passed without seeing, and drop
   the gaps the late events filled; commit.

**Dedupe**: an id is handed to the handler the first time it is seen, as a new event or
as a late one filling a gap, and never again: the ids passed are either seen (then never
re-read) or recorded as gaps (then read once, when they show up). The handler's writes
commit with the cursor, so a failing handler rolls the pass back and leaves the cursor
(and its gaps) where they were: the next pass retries the same events. Handlers should
still be idempotent by event id (a restored backup or a reset cursor replays events):
every consumer's writes carry a unique key for that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.events.locks import event_cursor_qs_for_update
from config.events.models import DomainEvent, EventCursor

DEFAULT_LOOKBACK = timedelta(minutes=10)
MAX_GAPS = 1000  # ranges kept per cursor; the oldest go first (ids rolled back long ago)

Handler = Callable[[Sequence[DomainEvent]], None]


@dataclass(frozen=True, slots=True)
class EventConsumer:
    """How one consumer reads the log. `name` is its cursor's; `types` the event types it
    handles (empty: every type; the cursor moves past the others all the same)."""

    name: str
    types: tuple[str, ...] = ()
    batch: int = 2000
    lookback: timedelta = DEFAULT_LOOKBACK
    # Events younger than this wait for the next pass (0: read everything committed).
    settle: timedelta = timedelta(0)
    # Where a new cursor starts (default 0: the whole log).
    start_after: int = 0
    only: tuple[str, ...] = field(default=())  # load only these columns (empty: all)


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    new: int  # events read past the cursor, of any type
    late: int  # events below the cursor that committed after the cursor passed them
    handled: int  # events handed to the handler (of the consumer's types)
    cursor: int


Gap = list[int]  # [first id, last id, epoch seconds when the cursor passed it]


def _add_gap(gaps: list[Gap], first: int, last: int, seen: int) -> None:
    if gaps and gaps[-1][1] == first - 1 and gaps[-1][2] == seen:
        gaps[-1][1] = last
    else:
        gaps.append([first, last, seen])


def _remove_ids(gaps: list[Gap], found: set[int]) -> list[Gap]:
    """The gaps without the ids that showed up (a range splits around each of them)."""
    kept: list[Gap] = []
    for first, last, seen in gaps:
        start = first
        for event_id in sorted(i for i in found if first <= i <= last):
            if start <= event_id - 1:
                kept.append([start, event_id - 1, seen])
            start = event_id + 1
        if start <= last:
            kept.append([start, last, seen])
    return kept


def _gaps_query(gaps: list[Gap]) -> Q:
    query = Q(pk__in=[])
    for first, last, _seen in gaps:
        query |= Q(pk=first) if first == last else Q(pk__gte=first, pk__lte=last)
    return query


def event_consumer_start(*, consumer: EventConsumer) -> EventCursor:
    """The consumer's cursor, created at `consumer.start_after` the first time."""
    cursor, _created = EventCursor.objects.get_or_create(
        name=consumer.name, defaults={"last_event_id": consumer.start_after}
    )
    return cursor


def events_consume(*, consumer: EventConsumer, handle: Handler, now: datetime | None = None) -> ConsumeResult:
    """One pass of `consumer` (see the module's docstring); `handle` gets the events to act on."""
    now = now or timezone.now()
    event_consumer_start(consumer=consumer)
    with transaction.atomic():
        cursor = event_cursor_qs_for_update().get(name=consumer.name)
        horizon = int((now - consumer.lookback).timestamp())
        gaps: list[Gap] = [list(gap) for gap in (cursor.gaps or []) if gap[2] >= horizon]

        events = DomainEvent.objects.order_by("pk")
        if consumer.only:
            events = events.only(*consumer.only, "type", "created_at")
        late = list(events.filter(_gaps_query(gaps))) if gaps else []

        # Ids and times first (cheap), whole rows only for the consumer's types.
        batch = list(
            DomainEvent.objects.filter(pk__gt=cursor.last_event_id)
            .order_by("pk")
            .values_list("pk", "type", "created_at")[: consumer.batch]
        )
        settled = now - consumer.settle
        ready = batch
        if consumer.settle:
            ready = []
            for row in batch:
                if row[2] > settled:
                    break
                ready.append(row)
        wanted = [pk for pk, type_, _at in ready if not consumer.types or type_ in consumer.types]
        new = list(events.filter(pk__in=wanted)) if wanted else []

        to_handle = [event for event in late if not consumer.types or event.type in consumer.types] + new
        if to_handle:
            handle(to_handle)

        changed = bool(late) or gaps != (cursor.gaps or [])
        gaps = _remove_ids(gaps, {event.pk for event in late})
        if ready:
            seen = int(now.timestamp())
            previous = cursor.last_event_id
            for pk, _type, _at in ready:
                if pk > previous + 1:
                    _add_gap(gaps, previous + 1, pk - 1, seen)
                previous = pk
            cursor.last_event_id = ready[-1][0]
            changed = True
        if changed:
            cursor.gaps = gaps[-MAX_GAPS:]
            cursor.save(update_fields=["last_event_id", "gaps", "updated_at"])
    return ConsumeResult(new=len(ready), late=len(late), handled=len(to_handle), cursor=cursor.last_event_id)


def event_consumers_lag() -> list[tuple[str, float | None]]:
    """Per consumer, the age in seconds of the oldest event past its cursor (None: caught up)."""
    now = timezone.now()
    lags: list[tuple[str, float | None]] = []
    for name, last_event_id in EventCursor.objects.order_by("name").values_list("name", "last_event_id"):
        oldest = (
            DomainEvent.objects.filter(pk__gt=last_event_id).order_by("pk").values_list("created_at", flat=True).first()
        )
        lags.append((name, None if oldest is None else (now - oldest).total_seconds()))
    return lags
