"""Celery tasks of the customers app: thin wrappers over the notification services."""

from __future__ import annotations

import time

from celery import shared_task

from config.ops.handoffs import Kind, handoffs_complete
from customers.notifications.consumer import BATCH, notifications_consume_events
from customers.notifications.scan import notifications_scan as scan
from customers.notifications.services import notification_deliver


@shared_task(bind=True, acks_late=True, max_retries=5, default_retry_delay=120, name="customers.notification_deliver")
def notification_deliver_task(self, log_id: int) -> str:
    try:
        status = notification_deliver(log_id=log_id).status
    except Exception as error:  # a transport error: the log row says `failed`; try again later
        raise self.retry(exc=error) from error
    handoffs_complete(kind=Kind.NOTIFICATION, object_ids=[log_id])  # sent, skipped, or failed for good
    return status


@shared_task(acks_late=True, name="customers.notifications_consume")
def notifications_consume(seconds: int = 50) -> int:
    """Beat entry point (every minute): read the outbox in batches for up to `seconds`."""
    deadline, total = time.monotonic() + seconds, 0
    while True:
        read = notifications_consume_events(limit=BATCH)
        total += read
        if read < BATCH or time.monotonic() > deadline:
            return total


@shared_task(acks_late=True, name="customers.notifications_scan")
def notifications_scan() -> int:
    return scan()
