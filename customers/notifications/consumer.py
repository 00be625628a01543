"""The notifications' consumer of the domain event log (config/events).

It reads the log through the one consumer helper (`config.events.consumers`: the cursor
"notifications", the look-back for events committed late below it, each event id handled
once) and queues what each event calls for; the queued rows commit with the cursor. Every
notification's dedupe key is unique as well, so a replay (a reset cursor) never sends twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

from billing.models import TestClock
from config.events.consumers import EventConsumer, events_consume
from config.events.models import DomainEvent
from customers.models import Customer, NotificationKind
from customers.notifications.scan import notifications_scan
from customers.notifications.services import notification_queue

CURSOR = "notifications"
LOOKBACK = timedelta(minutes=5)
BATCH = 2000
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
    clock = TestClock.objects.filter(pk=event.object_id).first()
    to = parse_datetime(str(event.data.get("to", "")))
    if clock is not None and to is not None:
        notifications_scan(as_of=to, test_clock=clock)


def _handle_events(events: Sequence[DomainEvent]) -> None:
    customers: dict[int, Any] = {
        customer.pk: customer
        for customer in Customer.objects.filter(pk__in={event.customer_id for event in events if event.customer_id})
    }
    for event in events:
        if event.type == "test_clock.advancing":
            _handle_clock(event)
        elif event.customer_id in customers:
            _handle(event, customers[event.customer_id])


def notifications_consume_events(*, limit: int = BATCH) -> int:
    """One pass over the event log past the cursor (and its late events); returns events read."""
    consumer = EventConsumer(name=CURSOR, types=HANDLED, batch=limit, lookback=LOOKBACK)
    return events_consume(consumer=consumer, handle=_handle_events).new
