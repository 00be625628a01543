"""Batch usage ingestion: dedup on id, per-event errors, visible at once on the upcoming invoice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import Price, UsageEvent
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def metered(api, billing_world, meter, price_factory):
    customer, price = billing_world
    calls = price_factory(
        unit_amount=Decimal("0.5"), usage_type=Price.UsageType.METERED, meter=meter, product=price.product
    )
    subscription = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}, {"price": f"price_{calls.pk}"}]},
        format="json",
    ).json()
    return customer, meter, subscription


def event(customer, meter, n, value=10, **extra):
    # Stamped when the subscription started (period starts are whole seconds): inside the
    # current period and not after "now", so the upcoming invoice counts it.
    at = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(seconds=1)
    start = customer.subscriptions.get().current_period_start
    at = max(at, start).isoformat()
    return {
        "id": f"evt-{n}",
        "customer": f"cus_{customer.pk}",
        "meter": meter.key,
        "timestamp": at,
        "value": value,
        **extra,
    }


def test_batch_is_recorded_deduplicated_and_on_the_upcoming_invoice(api, metered):
    customer, meter, subscription = metered
    batch = [event(customer, meter, n) for n in range(300)]

    first = api.post("/api/v1/usage_events", {"events": batch}, format="json")
    again = api.post("/api/v1/usage_events", {"events": batch[:100] + [event(customer, meter, 999)]}, format="json")

    assert first.status_code == 200, first.content
    assert first.json() == {"object": "usage_batch", "accepted": 300, "duplicates": 0, "errors": []}
    assert again.json()["accepted"] == 1 and again.json()["duplicates"] == 100
    upcoming = api.get("/api/v1/invoices/upcoming", {"subscription": subscription["id"]}).json()
    usage = [line for line in upcoming["lines"] if line["kind"] == "usage"]
    assert usage and Decimal(usage[0]["quantity"]) == Decimal(3010)
    assert usage[0]["amount"] == 1505  # 3,010 calls at half a cent
    listed = api.get("/api/v1/usage_events", {"customer": f"cus_{customer.pk}", "limit": 1}).json()
    assert listed["data"][0]["external_id"] == "evt-999" and listed["data"][0]["meter"] == meter.key


def test_each_bad_event_is_reported_and_the_good_ones_kept(api, metered):
    customer, meter, _subscription = metered
    batch = [
        event(customer, meter, 1),
        event(customer, meter, 2, value=-5),
        {**event(customer, meter, 3), "customer": "cus_999999"},
        {**event(customer, meter, 4), "customer": "sub_1"},
        {**event(customer, meter, 5), "meter": "nope"},
        {**event(customer, meter, 6), "timestamp": "yesterday"},
        {**event(customer, meter, 7), "timestamp": "2999-01-01T00:00:00Z"},
        event(customer, meter, 8, value="many"),
        {**event(customer, meter, 9), "id": ""},
        event(customer, meter, 10, value=2.5),
    ]

    body = api.post("/api/v1/usage_events", {"events": batch}, format="json").json()

    assert body["accepted"] == 2
    assert [(error["index"], error["code"]) for error in body["errors"]] == [
        (1, "negative_value"),
        (2, "unknown_customer"),
        (3, "invalid_customer"),
        (4, "unknown_meter"),
        (5, "invalid_timestamp"),
        (6, "future_timestamp"),
        (7, "invalid_value"),
        (8, "invalid_external_id"),
    ]
    assert UsageEvent.objects.get(external_id="evt-10").value == Decimal("2.5")


def test_more_than_1000_events_are_refused_whole(api, metered):
    customer, meter, _subscription = metered

    response = api.post(
        "/api/v1/usage_events", {"events": [event(customer, meter, n) for n in range(1001)]}, format="json"
    )

    assert assert_problem(response, 400)["field"] == "events"
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize("body", [{}, {"events": []}, {"events": "x"}, {"events": [1, 2]}, []])
def test_malformed_batches_are_400(api, body):
    assert_problem(api.post("/api/v1/usage_events", body, format="json"), 400)


def test_a_read_only_key_cannot_send_usage(api_read, metered):
    customer, meter, _subscription = metered

    assert_problem(api_read.post("/api/v1/usage_events", {"events": [event(customer, meter, 1)]}, format="json"), 403)
