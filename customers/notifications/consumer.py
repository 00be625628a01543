"""The notifications' consumer of the domain event outbox (billing/events.py).

A cursor (EventCursor "notifications") remembers the last event read. Each run reads the
events after it in id order, queues what they call for, and moves the cursor in the same
transaction. An event id is taken before its transaction commits, so a slow transaction
can commit an id below the cursor: each run also re-reads the last LOOKBACK of events,
skipping events that queued a notification already; the rest are harmless to replay
because every notification's dedupe key is unique (replays never send twice).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.locks import event_cursor_qs_for_update
from billing.models import DomainEvent, EventCursor
from customers.models import Customer, NotificationKind, NotificationLog
from customers.notifications.services import notification_queue

CURSOR = "notifications"
LOOKBACK = timedelta(minutes=5)
BATCH = 2000
LOOKBACK_EVENTS = 5000  # at most this many ids below the cursor are looked at again
Kind = NotificationKind
HANDLED = (
    "invoice.finalized",
    "payment.succeeded",
    "payment.failed",
    "dunning.retry_failed",
    "dunning.reminder",
    "dunning.exhausted",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "test_clock.advancing",
)


def _handle(event: DomainEvent, customer: Customer) -> None:
    data, kind = event.data, event.type
    queue = lambda notification_kind, key, **extra: notification_queue(  # noqa: E731
        customer=customer, kind=notification_kind, dedupe_key=key, data=extra, event_id=event.pk
    )
    if kind == "invoice.finalized":
        queue(Kind.INVOICE_FINALIZED, f"invoice:{event.object_id}", invoice=int(event.object_id))
    elif kind == "payment.succeeded":
        queue(Kind.PAYMENT_RECEIPT, f"payment:{event.object_id}", payment=int(event.object_id))
    elif kind == "payment.failed" and (data.get("attempt") or 1) == 1:
        # Later attempts are dunning retries: their "dunning.retry_failed" event speaks for them.
        queue(Kind.PAYMENT_FAILED, f"payment:{event.object_id}", payment=int(event.object_id))
    elif kind == "dunning.retry_failed":
        retry = data.get("retries_done") or 1
        queue(
            Kind.DUNNING_STEP,
            f"dunning:{event.object_id}:retry:{retry}",
            case=int(event.object_id),
            step="retry_failed",
            retry=retry,
            payment=data.get("payment"),
        )
    elif kind == "dunning.reminder":
        step = data.get("retries_done") or 1
        queue(
            Kind.DUNNING_STEP, f"dunning:{event.object_id}:reminder:{step}", case=int(event.object_id), step="reminder"
        )
    elif kind == "dunning.exhausted":
        queue(Kind.DUNNING_STEP, f"dunning:{event.object_id}:exhausted", case=int(event.object_id), step="exhausted")
    elif kind == "customer.subscription.updated" and data.get("change"):
        queue(Kind.PLAN_CHANGED, f"change:{data['change']}", change=data["change"], subscription=int(event.object_id))
    elif kind == "customer.subscription.updated" and data.get("cancel_at_period_end") is True:
        queue(
            Kind.SUBSCRIPTION_CANCELED,
            f"subscription:{event.object_id}:cancel-scheduled:{event.pk}",
            subscription=int(event.object_id),
            at_period_end=True,
        )
    elif kind == "customer.subscription.deleted":
        queue(Kind.SUBSCRIPTION_CANCELED, f"subscription:{event.object_id}:ended", subscription=int(event.object_id))
    elif kind == "customer.subscription.paused":
        queue(
            Kind.SUBSCRIPTION_PAUSED,
            f"subscription:{event.object_id}:paused:{event.pk}",
            subscription=int(event.object_id),
        )


def _handle_clock(event: DomainEvent) -> None:
    """A test clock moved: run the time-based scan for its customers at its new time."""
    from billing.models import TestClock
    from customers.notifications.scan import notifications_scan

    clock = TestClock.objects.filter(pk=event.object_id).first()
    to = parse_datetime(str(event.data.get("to", "")))
    if clock is not None and to is not None:
        notifications_scan(as_of=to, test_clock=clock)


def notifications_consume_events(*, limit: int = BATCH) -> int:
    """Read the outbox past the cursor (and the recent LOOKBACK again); returns events read."""
    EventCursor.objects.get_or_create(name=CURSOR)
    with transaction.atomic():
        cursor = event_cursor_qs_for_update().get(name=CURSOR)
        recent = DomainEvent.objects.filter(
            pk__gt=cursor.last_event_id - LOOKBACK_EVENTS,
            pk__lte=cursor.last_event_id,
            created_at__gte=timezone.now() - LOOKBACK,
            type__in=HANDLED,
        )
        new = DomainEvent.objects.filter(pk__gt=cursor.last_event_id)
        new_events = list(new.order_by("pk")[:limit])
        # Recent events that queued something already need nothing more (one indexed lookup).
        again = list(recent.order_by("pk"))
        logged = NotificationLog.objects.filter(event_id__in=[event.pk for event in again])
        handled = set(logged.values_list("event_id", flat=True))
        events = [event for event in again if event.pk not in handled] + new_events
        customers: dict[int, Any] = {
            customer.pk: customer
            for customer in Customer.objects.filter(pk__in={event.customer_id for event in events if event.customer_id})
        }
        for event in events:
            if event.type == "test_clock.advancing":
                _handle_clock(event)
            elif event.type in HANDLED and event.customer_id in customers:
                _handle(event, customers[event.customer_id])
        if new_events:
            cursor.last_event_id = new_events[-1].pk
            cursor.save(update_fields=["last_event_id", "updated_at"])
    return len(new_events)
