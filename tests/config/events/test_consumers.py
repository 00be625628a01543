"""The one consumer helper: cursor, look-back for late commits, each event id handled once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.events.consumers import EventConsumer, events_consume
from config.events.log import event_record
from config.events.models import DomainEvent, EventCursor

pytestmark = pytest.mark.django_db
AT = datetime(2026, 3, 1, tzinfo=UTC)
CONSUMER = EventConsumer(name="test.consumer", types=("invoice.finalized",), lookback=timedelta(minutes=5))


def record(object_id: int, type: str = "invoice.finalized") -> DomainEvent:
    return event_record(type=type, object_type="invoice", object_id=object_id, customer_id=None, occurred_at=AT)


class Recorder:
    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self, events) -> None:
        self.ids += [event.pk for event in events]


def hide(event: DomainEvent) -> int:
    """As if `event`'s transaction had not committed yet: its id is taken, its row not visible."""
    event_id = event.pk
    event.delete()
    event.pk = event_id
    return event_id


def commit_late(event: DomainEvent) -> None:
    event.save(force_insert=True)


def consume(consumer: EventConsumer = CONSUMER, now: datetime | None = None) -> list[int]:
    handled = Recorder()
    events_consume(consumer=consumer, handle=handled, now=now)
    return handled.ids


def test_new_events_are_handled_once_in_id_order_and_the_cursor_moves_past_other_types():
    first, other, second = record(1), record(2, type="customer.updated"), record(3)

    assert consume() == [first.pk, second.pk]
    assert consume() == []
    assert EventCursor.objects.get(name=CONSUMER.name).last_event_id == second.pk > other.pk


def test_the_look_back_catches_an_event_committed_late_below_the_cursor():
    first, late, last = record(1), record(2), record(3)
    late_id = hide(late)

    assert consume() == [first.pk, last.pk]  # the cursor passes the id it could not see
    commit_late(late)

    assert consume() == [late_id]
    assert consume() == []


def test_negative_control_a_plain_cursor_without_the_look_back_loses_the_late_event():
    # The same story read with the look-back expired at once: the late event is lost,
    # which is what the look-back exists to prevent.
    record(1)
    late = record(2)
    record(3)
    hide(late)
    now = timezone.now()
    consume(now=now)
    commit_late(late)

    assert consume(now=now + CONSUMER.lookback + timedelta(seconds=1)) == []


def test_dedupe_an_event_already_handled_is_not_handed_again_within_the_look_back():
    first, late, last = record(1), record(2), record(3)
    hide(late)
    consume()
    commit_late(late)
    consume()

    # Inside the look-back window, again and again: nothing is handed twice.
    assert consume() == [] and consume() == []
    # Negative control: a reset cursor (a restored backup) replays, so the check can fail.
    EventCursor.objects.filter(name=CONSUMER.name).update(last_event_id=0, gaps=[])
    assert consume() == [first.pk, late.pk, last.pk]


def test_a_failing_handler_leaves_the_cursor_and_its_gaps_where_they_were():
    first, late, last = record(1), record(2), record(3)
    hide(late)
    consume()
    before = EventCursor.objects.values("last_event_id", "gaps").get(name=CONSUMER.name)
    commit_late(late)
    fresh = record(4)

    def broken(events) -> None:
        DomainEvent.objects.filter(pk=first.pk).update(data={"touched": True})  # rolled back too
        raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        events_consume(consumer=CONSUMER, handle=broken)

    assert EventCursor.objects.values("last_event_id", "gaps").get(name=CONSUMER.name) == before
    assert DomainEvent.objects.get(pk=first.pk).data == {}
    assert consume() == [late.pk, fresh.pk]  # the next pass retries both
    assert last.pk < fresh.pk


def test_settle_leaves_young_events_for_the_next_pass():
    event = record(1)
    waiting = EventConsumer(name="test.settle", settle=timedelta(minutes=1))

    assert consume(waiting, now=event.created_at + timedelta(seconds=10)) == []
    assert consume(waiting, now=event.created_at + timedelta(minutes=2)) == [event.pk]


def test_a_new_consumer_starts_where_it_is_told():
    record(1)
    later = record(2)

    starting = EventConsumer(name="test.start", start_after=later.pk - 1)

    assert consume(starting) == [later.pk]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=3)),
        min_size=1,
        max_size=12,
    )
)
def test_property_every_event_is_handled_exactly_once_however_late_it_commits(plan):
    """Each event is written visible or hidden (committing `delay` passes later);
    a pass runs after each write. Every event ends handled, once."""
    DomainEvent.objects.all().delete()
    EventCursor.objects.all().delete()
    handled: Counter[int] = Counter()
    waiting: list[tuple[int, DomainEvent]] = []

    def one_pass() -> None:
        for event_id in consume(EventConsumer(name="test.property")):
            handled[event_id] += 1

    written = []
    for n, (late, delay) in enumerate(plan):
        event = record(n)
        written.append(event.pk)
        if late:
            hide(event)
            waiting.append((delay, event))
        for due in [item for item in waiting if item[0] == 0]:
            commit_late(due[1])
            waiting.remove(due)
        waiting = [(delay - 1, event) for delay, event in waiting]
        one_pass()
    for _delay, event in waiting:
        commit_late(event)
    one_pass()
    one_pass()

    assert handled == Counter(written)


def test_the_consumer_lag_is_the_age_of_the_oldest_unread_event():
    from config.events.consumers import event_consumers_lag

    record(1)
    consume()
    assert dict(event_consumers_lag())[CONSUMER.name] is None

    record(2)
    assert dict(event_consumers_lag())[CONSUMER.name] >= 0
