"""Outbound webhooks against a real HTTP server on loopback: signatures, retries, an outage, order."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from billing.models import WebhookAttempt, WebhookDelivery
from billing.services.webhooks import (
    WEBHOOK_RETRY_WINDOW,
    webhook_deliveries_resend,
    webhook_deliveries_send_due,
    webhook_endpoint_create,
    webhook_events_fan_out,
    webhooks_dispatch,
)
from config.events.log import event_record

pytestmark = pytest.mark.django_db


# Copied from docs/api.md ("verify_tarif_signature"): the verifier an integrator would write.
def verify_tarif_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """True if `body` was signed by Tarif with `secret` less than `tolerance` seconds ago."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        signature = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class Receiver:
    """A webhook endpoint on 127.0.0.1: answers with the statuses queued, or sleeps."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.received.append((dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        return [json.loads(body) for _headers, body in self.received]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def record(type: str, object_id: int, object_type: str = "invoice", **data):
    return event_record(
        type=type, object_type=object_type, object_id=object_id, customer_id=None, occurred_at=timezone.now(), data=data
    )


def test_event_is_delivered_signed_and_verifiable_from_the_docs(receiver):
    endpoint = webhook_endpoint_create(url=receiver.url, enabled_events=["invoice.*"])
    event = record("invoice.finalized", 31, number="F-1")
    record("customer.created", 4, object_type="customer")  # filtered out

    outcome = webhooks_dispatch()

    assert outcome.delivered == 1
    [(headers, body)] = receiver.received
    assert verify_tarif_signature(endpoint.secret, headers["Tarif-Signature"], body)
    assert not verify_tarif_signature("whsec_wrong", headers["Tarif-Signature"], body)
    assert not verify_tarif_signature(endpoint.secret, headers["Tarif-Signature"], body + b" ")
    payload = json.loads(body)
    assert payload["id"] == f"evt_{event.pk}" == headers["Tarif-Event-Id"]
    assert payload["type"] == "invoice.finalized" and payload["data"]["object_id"] == "in_31"
    assert payload["data"]["number"] == "F-1"
    assert WebhookDelivery.objects.get().status == "succeeded"


def test_a_500_is_retried_with_backoff(receiver):
    webhook_endpoint_create(url=receiver.url, enabled_events=[])
    record("invoice.finalized", 1)
    receiver.statuses = [500]
    now = timezone.now()

    first = webhooks_dispatch(now=now)
    delivery = WebhookDelivery.objects.get()
    assert first.failed == 1 and delivery.status == "pending" and delivery.last_status_code == 500
    assert delivery.next_attempt_at == now + timedelta(seconds=30)
    assert webhook_deliveries_send_due(now=now + timedelta(seconds=10)).delivered == 0  # not due yet

    second = webhook_deliveries_send_due(now=now + timedelta(seconds=31))

    assert second.delivered == 1 and len(receiver.received) == 1
    assert list(WebhookAttempt.objects.values_list("status_code", flat=True)) == [500, 200]


def test_a_timeout_is_retried(receiver, settings):
    settings.TARIF_WEBHOOK_TIMEOUT_SECONDS = 0.3
    webhook_endpoint_create(url=receiver.url, enabled_events=[])
    record("invoice.finalized", 1)
    receiver.delay = 1.0
    now = timezone.now()

    assert webhooks_dispatch(now=now).failed == 1
    assert "Timeout" in WebhookDelivery.objects.get().last_error

    receiver.delay = 0
    assert webhook_deliveries_send_due(now=now + timedelta(minutes=1)).delivered == 1


def test_gives_up_after_three_days_and_can_be_resent(receiver):
    webhook_endpoint_create(url=receiver.url, enabled_events=[])
    record("invoice.finalized", 1)
    receiver.statuses = [503] * 100
    webhook_events_fan_out()
    start = timezone.now()

    moment, attempts = start, 0
    while WebhookDelivery.objects.get().status == "pending" and attempts < 100:
        moment = WebhookDelivery.objects.get().next_attempt_at
        webhook_deliveries_send_due(now=moment)
        attempts += 1

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and 10 < delivery.attempts < 40
    assert moment - start <= WEBHOOK_RETRY_WINDOW

    receiver.statuses = []
    webhook_deliveries_resend(deliveries=[delivery])
    assert webhook_deliveries_send_due().delivered == 1
    assert WebhookDelivery.objects.get().status == "succeeded"


def test_an_endpoint_down_for_hours_gets_everything_in_order_per_object():
    port = free_port()
    webhook_endpoint_create(url=f"http://127.0.0.1:{port}/hooks", enabled_events=[])
    types = ["invoice.created", "invoice.finalized", "invoice.payment_failed", "invoice.paid"]
    for type in types:
        for invoice_id in (1, 2, 3):
            record(type, invoice_id)
    now = timezone.now()

    # Down: nothing listens on the port; every attempt fails and is rescheduled.
    for hour in range(6):
        webhooks_dispatch(now=now + timedelta(hours=hour))
    assert not WebhookDelivery.objects.filter(status="succeeded").exists()
    # Only the first event of each invoice was tried: the later ones wait behind it.
    assert set(WebhookDelivery.objects.filter(attempts__gt=0).values_list("event__type", flat=True)) == {types[0]}

    server = Receiver(port=port)
    try:
        for step in range(1, 20):
            webhooks_dispatch(now=now + timedelta(hours=12, minutes=step * 10))
    finally:
        server.stop()

    events = server.events()
    assert len(events) == 12 and len({event["id"] for event in events}) == 12
    for invoice in ("in_1", "in_2", "in_3"):
        assert [event["type"] for event in events if event["data"]["object_id"] == invoice] == types
    assert WebhookDelivery.objects.filter(status="succeeded").count() == 12


def test_fan_out_twice_creates_no_duplicates(receiver):
    webhook_endpoint_create(url=receiver.url, enabled_events=[])
    record("invoice.finalized", 1)

    assert webhook_events_fan_out() == 1
    assert webhook_events_fan_out() == 0
    assert WebhookDelivery.objects.count() == 1


def test_an_endpoint_gets_only_events_after_its_creation(receiver):
    record("invoice.finalized", 1)
    webhook_endpoint_create(url=receiver.url, enabled_events=[])
    record("invoice.paid", 1)

    webhooks_dispatch()

    assert [event["type"] for event in receiver.events()] == ["invoice.paid"]
