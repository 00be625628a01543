"""The outbox relay delivers every event once the broker is back, and marks only what it published."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from kombu.exceptions import OperationalError

from billing.events import event_record
from config.ops.models import OutboxDelivery
from config.ops.outbox import deliver_event, outbox_lag_seconds, outbox_relay, register_consumer

pytestmark = pytest.mark.django_db
AT = datetime(2026, 3, 1, tzinfo=UTC)


def record(n: int) -> list[int]:
    return [
        event_record(type="invoice.finalized", object_type="invoice", object_id=i, customer_id=None, occurred_at=AT).pk
        for i in range(n)
    ]


def test_events_wait_out_a_broker_outage_then_go_out_once_in_order():
    ids = record(3)
    published: list[int] = []

    def broker_down(event_id: int) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    assert outbox_relay(publish=broker_down) == 0
    assert not OutboxDelivery.objects.exists()
    assert outbox_lag_seconds() is not None

    assert outbox_relay(publish=published.append) == 3
    assert outbox_relay(publish=published.append) == 0
    assert published == ids
    assert outbox_lag_seconds() is None


def test_an_outage_in_the_middle_keeps_the_rest_for_later():
    ids = record(3)
    published: list[int] = []

    def fails_on_second(event_id: int) -> None:
        if event_id == ids[1]:
            raise OperationalError("connection reset")
        published.append(event_id)

    assert outbox_relay(publish=fails_on_second) == 1
    assert outbox_relay(publish=published.append) == 2
    assert published == ids


def test_delivery_calls_the_registered_consumers():
    seen = []
    consumer = register_consumer(lambda event: seen.append(event.pk))
    try:
        (event_id,) = record(1)

        deliver_event.apply(args=[event_id])

        assert seen == [event_id]
    finally:
        from config.ops import outbox

        outbox._consumers.remove(consumer)


@pytest.mark.broker
@pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL"), reason="needs a real broker (CELERY_BROKER_URL)")
def test_with_the_real_broker_the_relay_survives_an_outage():
    import redis

    from config.celery import app

    url = os.environ["CELERY_BROKER_URL"]
    queue = "tarif-outbox-test"
    client = redis.Redis.from_url(url)
    client.delete(queue)
    ids = record(2)

    def through(broker_url: str):
        def publish(event_id: int) -> None:
            with app.connection_for_write(url=broker_url, connect_timeout=1) as connection:
                deliver_event.apply_async(args=[event_id], retry=False, connection=connection, queue=queue)

        return publish

    app.conf.task_always_eager = False
    try:
        assert outbox_relay(publish=through("redis://127.0.0.1:1/0")) == 0  # nothing listens there: the outage
        assert not OutboxDelivery.objects.exists()
        assert outbox_relay(publish=through(url)) == 2
    finally:
        app.conf.task_always_eager = True

    assert client.llen(queue) == 2
    assert set(OutboxDelivery.objects.values_list("event_id", flat=True)) == set(ids)
    client.delete(queue)
