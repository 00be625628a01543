"""Email and webhook delivery lags: on /metrics and on the Operations page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import WebhookDelivery
from billing.services.webhooks import webhook_endpoint_create
from config.events.models import DomainEvent
from config.ops.selectors import email_delivery_lag, webhook_delivery_lag
from customers.models import NotificationKind, NotificationLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def deliveries(customer):
    """Webhooks: one delivered after 30 s, one waiting for 10 minutes, one given up.
    Emails: two sent after 4 and 8 s, one queued 2 minutes ago, one skipped."""
    now = timezone.now()
    endpoint = webhook_endpoint_create(url="https://hooks.example.com/tarif", enabled_events=["*"])

    def event(n: int) -> DomainEvent:
        return DomainEvent.objects.create(
            type="invoice.finalized", object_type="invoice", object_id=str(n), occurred_at=now
        )

    rows = {
        WebhookDelivery.Status.SUCCEEDED: (timedelta(minutes=5), timedelta(seconds=30)),
        WebhookDelivery.Status.PENDING: (timedelta(minutes=10), None),
        WebhookDelivery.Status.FAILED: (timedelta(days=3), None),
    }
    for n, (status, (age, took)) in enumerate(rows.items()):
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, event=event(n), object_key=f"invoice:{n}")
        created = now - age
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=status, created_at=created, delivered_at=created + took if took else None
        )
    for n, (status, age, took) in enumerate(
        [
            (NotificationLog.Status.SENT, timedelta(hours=1), timedelta(seconds=4)),
            (NotificationLog.Status.SENT, timedelta(hours=2), timedelta(seconds=8)),
            (NotificationLog.Status.PENDING, timedelta(minutes=2), None),
            (NotificationLog.Status.SKIPPED, timedelta(hours=5), None),
            (NotificationLog.Status.SENT, timedelta(days=3), timedelta(hours=5)),  # outside the 24 h window
        ]
    ):
        log = NotificationLog.objects.create(
            customer=customer, kind=NotificationKind.INVOICE_FINALIZED, dedupe_key=f"k{n}"
        )
        created = now - age
        NotificationLog.objects.filter(pk=log.pk).update(
            status=status, created_at=created, sent_at=created + took if took else None
        )


def test_delivery_lags_count_what_waits_and_how_long_delivery_took(deliveries):
    since = timezone.now() - timedelta(days=1)

    webhooks = webhook_delivery_lag(since=since)
    emails = email_delivery_lag(since=since)

    assert (webhooks.pending, webhooks.delivered, webhooks.average_seconds) == (1, 1, 30.0)
    assert 600 <= webhooks.oldest_pending_seconds < 660
    assert (emails.pending, emails.delivered, emails.average_seconds) == (1, 2, 6.0)
    assert 120 <= emails.oldest_pending_seconds < 180


def test_nothing_waiting_means_no_lag():
    lag = email_delivery_lag(since=timezone.now() - timedelta(days=1))

    assert (lag.pending, lag.oldest_pending_seconds, lag.average_seconds, lag.delivered) == (0, None, None, 0)


def test_metrics_expose_delivery_lags_by_channel(client, deliveries, settings):
    settings.TARIF_METRICS_ALLOWED_IPS = ["127.0.0.1"]  # opened explicitly (closed by default)
    body = client.get("/metrics").content.decode()

    assert 'tarif_delivery_average_lag_seconds{channel="webhook"} 30.0' in body
    assert 'tarif_delivery_average_lag_seconds{channel="email"} 6.0' in body
    assert 'tarif_delivery_pending{channel="email"} 1.0' in body
    assert 'tarif_delivery_pending{channel="webhook"} 1.0' in body
    oldest = next(
        line for line in body.splitlines() if line.startswith('tarif_delivery_lag_seconds{channel="webhook"}')
    )
    assert 600 <= float(oldest.split()[-1]) < 660


def test_metrics_report_zero_lag_when_nothing_waits(client, settings):
    settings.TARIF_METRICS_ALLOWED_IPS = ["127.0.0.1"]  # opened explicitly (closed by default)
    body = client.get("/metrics").content.decode()

    assert 'tarif_delivery_lag_seconds{channel="email"} 0.0' in body
    assert 'tarif_delivery_lag_seconds{channel="webhook"} 0.0' in body
    assert "tarif_delivery_average_lag_seconds{" not in body  # no delivery: no average, not a fake 0


def test_the_operations_page_shows_delivery_lags(console, deliveries):
    response = console.get(reverse("operations"))

    assert response.status_code == 200
    content = response.content.decode()
    table = content[content.index('id="delivery-lags"') :]
    table = table[: table.index("</table>")]
    assert "Webhooks" in table and "Emails" in table
    assert "30 s" in table  # the average lag, in the unit a person reads (config.ops.operations.format_duration)
    assert "6 s" in table
