"""The outbox relay: domain events written in the business transaction reach the broker later.

`outbox_relay` (Celery beat, every minute) publishes every event not yet published to the
`ops.deliver_event` task, marking each one only once the broker accepted it. While the
broker is down nothing is marked, and the next relay after the outage delivers everything.
Consumers (webhooks, notifications, surveys) register with `register_consumer` and must be
idempotent by event id: delivery is at least once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from celery import shared_task
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import DomainEvent
from config.ops.models import OutboxDelivery

logger = logging.getLogger(__name__)

LOOKBACK = timedelta(days=7)
Consumer = Callable[[DomainEvent], None]
_consumers: list[Consumer] = []


def register_consumer(consumer: Consumer) -> Consumer:
    """Decorator: `@register_consumer def send_webhooks(event): ...` (called once per delivery)."""
    if consumer not in _consumers:
        _consumers.append(consumer)
    return consumer


def _publish_with_celery(event_id: int) -> None:
    # retry=False: during an outage fail at once and leave the event for the next relay.
    deliver_event.apply_async(args=[event_id], retry=False)


def outbox_relay(*, limit: int = 1000, publish: Callable[[int], None] | None = None) -> int:
    """Publish up to `limit` unpublished events, oldest first; returns how many were published."""
    publish = publish or _publish_with_celery
    since = timezone.now() - LOOKBACK
    pending = list(
        DomainEvent.objects.filter(created_at__gte=since, outbox_delivery__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    published = 0
    for event_id in pending:
        try:
            publish(event_id)
        except Exception as error:  # kombu / redis raise many kinds; stop and retry on the next run
            logger.warning(
                "outbox: broker refused event %s (%s); %s left for the next relay",
                event_id,
                error,
                len(pending) - published,
            )
            break
        try:
            with transaction.atomic():
                OutboxDelivery.objects.create(event_id=event_id, published_at=timezone.now())
        except IntegrityError:
            continue  # another relay published it too: consumers dedupe by event id
        published += 1
    return published


@shared_task(acks_late=True, name="ops.outbox_relay")
def outbox_relay_task() -> int:
    from config.ops.maintenance import maintenance_active

    return 0 if maintenance_active() else outbox_relay()


@shared_task(bind=True, acks_late=True, max_retries=10, default_retry_delay=60, name="ops.deliver_event")
def deliver_event(self, event_id: int) -> int:
    event = DomainEvent.objects.filter(pk=event_id).first()
    if event is None:
        return 0
    try:
        for consumer in list(_consumers):
            consumer(event)
    except Exception as error:
        raise self.retry(exc=error) from error
    return len(_consumers)


def outbox_lag_seconds() -> float | None:
    """Age of the oldest event not yet published (None when all are out)."""
    oldest = (
        DomainEvent.objects.filter(created_at__gte=timezone.now() - LOOKBACK, outbox_delivery__isnull=True)
        .order_by("pk")
        .values_list("created_at", flat=True)
        .first()
    )
    return None if oldest is None else (timezone.now() - oldest).total_seconds()
