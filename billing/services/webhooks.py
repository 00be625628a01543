"""Outbound webhooks: the domain event log (outbox) delivered to integrators' endpoints.

1. Fan-out (`webhook_events_fan_out`): each active endpoint is a consumer of the event
   log (config/events/consumers.py: its own cursor, `webhooks.endpoint.<id>`, the look-back
   for events committed late below it, each event id once) and gets one WebhookDelivery
   row per matching DomainEvent, under a unique (endpoint, event) constraint as well.
   Nothing is lost if a worker dies: the rows are the queue.
2. Delivery (`webhook_deliveries_send_due`): a due delivery is claimed with a
   compare-and-set on `next_attempt_at` (a lease, so a dead worker's claim expires), sent
   as JSON signed with HMAC-SHA256 over "<timestamp>.<body>" (header `Tarif-Signature:
   t=<unix seconds>,v1=<hex>`), and either marked succeeded (any 2xx) or rescheduled
   with exponential backoff until WEBHOOK_RETRY_WINDOW (3 days) after the event.
3. Order per object: a delivery waits while an older delivery of the same object to the
   same endpoint is still pending, so an endpoint that was down receives each object's
   events in the order they happened once it is back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from billing.serializers import event_data_public, event_object_public_id
from billing.services.webhook_targets import UnsafeWebhookTarget, webhook_post, webhook_target_check
from config.errors import DomainError
from config.events.consumers import EventConsumer, events_consume
from config.events.models import DomainEvent
from config.modes import default_livemode
from config.types import JsonDict

SIGNATURE_HEADER = "Tarif-Signature"
WEBHOOK_RETRY_WINDOW = timedelta(days=3)
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY_INTERVAL = timedelta(hours=6)
FAN_OUT_LOOKBACK = timedelta(minutes=10)
LEASE = timedelta(seconds=60)  # a claimed delivery is retried after this if its worker died
FAN_OUT_BATCH = 5000


class WebhookError(DomainError):
    code = "invalid_webhook"


class WebhookTargetRefused(WebhookError):
    """The URL is not a public HTTPS host (checked at registration and before every send)."""


def webhook_secret_generate() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def webhook_timeout() -> float:
    return float(getattr(settings, "TARIF_WEBHOOK_TIMEOUT_SECONDS", 10))


# -- signing -------------------------------------------------------------------------


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def webhook_signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={webhook_signature(secret=secret, timestamp=timestamp, body=body)}"


def retry_delay(attempts: int) -> timedelta:
    """30 s after the first failure, then doubling (1 min, 2 min, 4 min…) up to every 6 hours."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY_INTERVAL)


# -- endpoints -----------------------------------------------------------------------


def _check_event_types(enabled_events: Any) -> list[str]:
    if not isinstance(enabled_events, list) or not all(isinstance(name, str) and name for name in enabled_events):
        raise WebhookError(_('Event types are a list of type names ("invoice.finalized", "invoice.*" or "*").'))
    return enabled_events


def webhook_url_check(*, url: str) -> None:
    """Refuse (WebhookTargetRefused) a URL that is not a public HTTPS host; see webhook_targets."""
    try:
        webhook_target_check(url=url, require_resolution=False)
    except UnsafeWebhookTarget as error:
        raise WebhookTargetRefused(str(error)) from error


def webhook_endpoint_create(
    *, url: str, enabled_events: list[str], description: str = "", livemode: bool | None = None
) -> WebhookEndpoint:
    """A new endpoint; it receives events recorded from now on (not the history), of its own
    mode only (`livemode`, default: the running request's, else live)."""
    webhook_url_check(url=url)
    endpoint = WebhookEndpoint(
        url=url,
        description=description,
        enabled_events=_check_event_types(enabled_events),
        secret=webhook_secret_generate(),
        livemode=default_livemode() if livemode is None else livemode,
    )
    endpoint.full_clean(exclude=["secret"])
    with transaction.atomic(savepoint=False):
        latest = DomainEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        endpoint.last_event_id = latest
        endpoint.save()
    return endpoint


def webhook_endpoint_update(*, endpoint: WebhookEndpoint, changes: dict) -> WebhookEndpoint:
    if "enabled_events" in changes:
        _check_event_types(changes["enabled_events"])
    if "url" in changes:
        webhook_url_check(url=changes["url"])
    for name, value in changes.items():
        setattr(endpoint, name, value)
    endpoint.full_clean(exclude=["secret"])
    endpoint.save()
    return endpoint


def webhook_endpoint_roll_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint.secret = webhook_secret_generate()
    endpoint.save(update_fields=["secret"])
    return endpoint


def event_matches(enabled_events: Iterable[str], event_type: str) -> bool:
    names = list(enabled_events)
    if not names or "*" in names:
        return True
    return any(event_type == name or (name.endswith(".*") and event_type.startswith(name[:-1])) for name in names)


# -- fan-out -------------------------------------------------------------------------


def _object_key(event: DomainEvent) -> str:
    return f"{event.object_type}:{event.object_id}"[:90]


def webhook_endpoint_consumer(endpoint: WebhookEndpoint) -> EventConsumer:
    """The endpoint's place in the event log: it starts after the last event recorded
    before the endpoint was created (`last_event_id`, set by `webhook_endpoint_create`)."""
    return EventConsumer(
        name=f"webhooks.endpoint.{endpoint.pk}",
        batch=FAN_OUT_BATCH,
        lookback=FAN_OUT_LOOKBACK,
        start_after=endpoint.last_event_id,
        only=("pk", "type", "object_type", "object_id", "livemode"),
    )


def webhook_events_fan_out(*, now: datetime | None = None) -> int:
    """Create the deliveries of events not yet fanned out; returns how many were created."""
    now = now or timezone.now()
    created = 0
    for endpoint in WebhookEndpoint.objects.filter(active=True):

        def fan_out(events: Sequence[DomainEvent], endpoint: WebhookEndpoint = endpoint) -> None:
            nonlocal created
            rows = [
                WebhookDelivery(
                    endpoint_id=endpoint.pk, event_id=event.pk, object_key=_object_key(event), next_attempt_at=now
                )
                for event in events
                # Test-mode events go to test-mode endpoints only, and live to live.
                if event.livemode == endpoint.livemode
                and event.created_at >= endpoint.created_at
                and event_matches(endpoint.enabled_events, event.type)
            ]
            WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
            created += len(rows)

        events_consume(consumer=webhook_endpoint_consumer(endpoint), handle=fan_out, now=now)
    return created


# -- delivery ------------------------------------------------------------------------


def webhook_payload(event: DomainEvent) -> JsonDict:
    """What an endpoint receives: the event with public ids (`evt_…`, `in_…`, `cus_…`)."""
    return {
        "id": f"evt_{event.pk}",
        "object": "event",
        "type": event.type,
        "created": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": {
            "object_type": event.object_type,
            "object_id": event_object_public_id(event.object_type, event.object_id),
            "customer": None if event.customer_id is None else f"cus_{event.customer_id}",
            **event_data_public(event.data),
        },
    }


@dataclass(frozen=True, slots=True)
class SendOutcome:
    delivered: int
    failed: int


def _due(now: datetime) -> QuerySet[WebhookDelivery]:
    older_pending = WebhookDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        object_key=OuterRef("object_key"),
        status=WebhookDelivery.Status.PENDING,
        event_id__lt=OuterRef("event_id"),
    )
    return (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .exclude(Exists(older_pending))
        .order_by("event_id")
    )


def _claim(delivery: WebhookDelivery, now: datetime) -> bool:
    """Take the delivery for LEASE: only one worker wins the compare-and-set."""
    return bool(
        WebhookDelivery.objects.filter(
            pk=delivery.pk, status=WebhookDelivery.Status.PENDING, next_attempt_at=delivery.next_attempt_at
        ).update(next_attempt_at=now + LEASE)
    )


def webhook_delivery_attempt(*, delivery: WebhookDelivery, now: datetime | None = None) -> bool:
    """Send one delivery once; record the attempt; schedule a retry or give up. True if delivered."""
    now = now or timezone.now()
    endpoint = delivery.endpoint
    event = delivery.event
    body = json.dumps(webhook_payload(event), separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Tarif-Webhooks/1",
        "Tarif-Event-Id": f"evt_{event.pk}",
        SIGNATURE_HEADER: webhook_signature_header(secret=endpoint.secret, timestamp=timestamp, body=body),
    }
    started = time.monotonic()
    status_code: int | None = None
    error = ""
    status_line = ""
    try:
        # Checked again now (the name may resolve elsewhere than at registration), connected
        # to the checked address, no redirects, and only the status line is kept: the body
        # of whatever answered is never stored nor shown.
        response = webhook_post(url=endpoint.url, body=body, headers=headers, timeout=webhook_timeout())
        status_code = response.status_code
        status_line = response.status_line
        if not 200 <= status_code < 300:
            error = f"HTTP {status_line}"[:500]
    except UnsafeWebhookTarget as exc:
        error = (_("Refused target: %(reason)s") % {"reason": exc})[:500]
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    duration_ms = int((time.monotonic() - started) * 1000)
    delivered = not error
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            attempted_at=now,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
            response_excerpt=status_line,
        )
        delivery.attempts += 1
        delivery.last_status_code = status_code
        delivery.last_error = error
        if delivered:
            delivery.status = WebhookDelivery.Status.SUCCEEDED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        else:
            next_at = now + retry_delay(delivery.attempts)
            if next_at - delivery.created_at > WEBHOOK_RETRY_WINDOW:
                delivery.status = WebhookDelivery.Status.FAILED
                delivery.next_attempt_at = None
            else:
                delivery.next_attempt_at = next_at
        delivery.save(
            update_fields=["attempts", "last_status_code", "last_error", "status", "delivered_at", "next_attempt_at"]
        )
    return delivered


def webhook_deliveries_send_due(*, now: datetime | None = None, limit: int = 200) -> SendOutcome:
    """Send what is due, oldest event first, at most `limit` deliveries in this pass."""
    now = now or timezone.now()
    delivered = failed = 0
    for delivery in _due(now).select_related("endpoint", "event")[:limit]:
        if not _claim(delivery, now):
            continue
        if webhook_delivery_attempt(delivery=delivery, now=now):
            delivered += 1
        else:
            failed += 1
    return SendOutcome(delivered=delivered, failed=failed)


def webhook_deliveries_resend(*, deliveries: Iterable[WebhookDelivery]) -> int:
    """Send again now (operator's manual resend), whatever the previous outcome."""
    ids = [delivery.pk for delivery in deliveries]
    return WebhookDelivery.objects.filter(pk__in=ids).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=timezone.now()
    )


def webhooks_dispatch(*, now: datetime | None = None) -> SendOutcome:
    """One pass of the outbox: fan out new events, then send what is due."""
    webhook_events_fan_out(now=now)
    return webhook_deliveries_send_due(now=now)
