"""Issue 16 (usage): meters, usage thresholds, current usage and event properties over the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import Meter, Price, UsageThreshold
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def test_a_meter_is_created_listed_retrieved_and_renamed(api):
    created = api.post(
        "/api/v1/meters",
        {"key": "api_calls", "name": "API calls", "aggregation": "latest", "dimensions": ["region"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["id"].startswith("mtr_") and body["aggregation"] == "latest" and body["dimensions"] == ["region"]
    assert body["livemode"] is True

    assert [meter["key"] for meter in api.get("/api/v1/meters").json()["data"]] == ["api_calls"]
    assert api.get(f"/api/v1/meters/{body['id']}").json()["name"] == "API calls"
    renamed = api.patch(
        f"/api/v1/meters/{body['id']}", {"name": "Calls", "dimensions": ["region", "model"]}, format="json"
    )
    assert renamed.status_code == 200 and renamed.json()["dimensions"] == ["region", "model"]


def test_meter_input_is_strict_and_validated(api):
    unknown = api.post(
        "/api/v1/meters", {"key": "k", "name": "K", "aggregation": "sum", "colour": "red"}, format="json"
    )
    body = assert_problem(unknown, 400)
    assert "colour" in str(body)
    bad_aggregation = api.post("/api/v1/meters", {"key": "k", "name": "K", "aggregation": "avg"}, format="json")
    assert_problem(bad_aggregation, 400)
    duplicate_dimensions = api.post(
        "/api/v1/meters", {"key": "k", "name": "K", "aggregation": "sum", "dimensions": ["a", "a"]}, format="json"
    )
    # Model rules (Django validation) answer 422 with the field, as for every resource.
    assert assert_problem(duplicate_dimensions, 422)["errors"][0]["field"] == "dimensions"


def test_a_used_meter_keeps_its_aggregation_and_its_filtered_dimensions(api, meter_factory, price_factory):
    meter = meter_factory(dimensions=["region"])
    price_factory(usage_type=Price.UsageType.METERED, meter=meter, usage_filter={"region": ["eu"]})

    refused = api.patch(f"/api/v1/meters/mtr_{meter.pk}", {"dimensions": []}, format="json")

    assert assert_problem(refused, 422)["errors"][0]["field"] == "dimensions"
    assert Meter.objects.get(pk=meter.pk).dimensions == ["region"]


def test_meters_stay_in_their_mode(api, sandbox_api):
    created = sandbox_api.post("/api/v1/meters", {"key": "t", "name": "T", "aggregation": "sum"}, format="json").json()
    assert created["livemode"] is False
    assert api.get("/api/v1/meters").json()["data"] == []
    assert_problem(api.get(f"/api/v1/meters/{created['id']}"), 404)


def test_a_percentage_price_is_created_and_a_rate_on_a_flat_price_refused(api, product_factory, meter_factory):
    product, meter = product_factory(), meter_factory()
    base = {
        "product": f"prod_{product.pk}",
        "currency": "EUR",
        "cycle": {"kind": "interval", "unit": "month", "count": 1},
    }
    created = api.post(
        "/api/v1/prices",
        {
            **base,
            "usage_type": "metered",
            "meter": f"mtr_{meter.pk}",
            "scheme": "percentage",
            "percentage_rate": "1.2",
            "fixed_amount": "10",
            "free_units": 3,
            "per_transaction_max_amount": "300",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["percentage_rate"] == "1.200000" and created.json()["free_units"] == 3

    refused = api.post("/api/v1/prices", {**base, "unit_amount": "100", "percentage_rate": "2"}, format="json")
    assert assert_problem(refused, 422)["errors"][0]["field"] == "percentage_rate"


def test_a_filter_on_an_undeclared_dimension_is_refused(api, product_factory, meter_factory):
    meter = meter_factory(dimensions=["region"])
    refused = api.post(
        "/api/v1/prices",
        {
            "product": f"prod_{product_factory().pk}",
            "currency": "EUR",
            "cycle": {"kind": "interval", "unit": "month", "count": 1},
            "usage_type": "metered",
            "meter": f"mtr_{meter.pk}",
            "unit_amount": "10",
            "usage_filter": {"model": ["large"]},
        },
        format="json",
    )
    assert assert_problem(refused, 422)["errors"][0]["field"] == "usage_filter"


@pytest.fixture
def metered_world(api, billing_world, meter_factory, price_factory):
    customer, price = billing_world
    meter = meter_factory(dimensions=["region"])
    eu = price_factory(
        unit_amount=Decimal(10),
        usage_type=Price.UsageType.METERED,
        meter=meter,
        product=price.product,
        usage_filter={"region": ["eu"]},
    )
    subscription = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}, {"price": f"price_{eu.pk}"}]},
        format="json",
    ).json()
    return customer, meter, eu, subscription


def _events(customer, meter, *rows):
    at = (datetime.now(tz=UTC).replace(microsecond=0) - timedelta(seconds=1)).isoformat()
    start = customer.subscriptions.get().current_period_start
    at = max(datetime.fromisoformat(at), start).isoformat()
    return {
        "events": [
            {"id": f"e{n}", "customer": f"cus_{customer.pk}", "meter": meter.key, "timestamp": at, **row}
            for n, row in enumerate(rows)
        ]
    }


def test_properties_are_stored_and_current_usage_shows_the_filtered_cost(api, metered_world):
    customer, meter, eu, subscription = metered_world
    batch = _events(
        customer, meter, {"value": 3, "properties": {"region": "eu"}}, {"value": 5, "properties": {"region": "us"}}
    )

    result = api.post("/api/v1/usage_events", batch, format="json").json()
    usage = api.get(f"/api/v1/subscriptions/{subscription['id']}/usage")

    assert result["accepted"] == 2 and result["errors"] == []
    listed = api.get("/api/v1/usage_events").json()["data"]
    assert sorted(event["properties"]["region"] for event in listed) == ["eu", "us"]
    assert usage.status_code == 200, usage.content
    body = usage.json()
    (row,) = body["usage"]
    assert row["price"] == f"price_{eu.pk}" and row["filter"] == {"region": ["eu"]}
    assert Decimal(row["units"]) == 3 and row["amount"] == 30 and body["amount"] == 30
    assert "region: eu" in row["description"]


def test_bad_properties_are_refused_per_event(api, metered_world):
    customer, meter, _eu, _subscription = metered_world
    batch = _events(
        customer,
        meter,
        {"properties": {"region": 3}},
        {"properties": {f"k{n}": "v" for n in range(11)}},
        {"properties": ["eu"]},
        {"properties": {"region": "eu"}},
    )

    result = api.post("/api/v1/usage_events", batch, format="json").json()

    assert result["accepted"] == 1
    assert [(error["index"], error["code"]) for error in result["errors"]] == [
        (0, "invalid_properties"),
        (1, "invalid_properties"),
        (2, "invalid_properties"),
    ]


def test_a_threshold_is_created_listed_shown_in_usage_and_deleted(api, metered_world):
    customer, meter, _eu, subscription = metered_world

    created = api.post(
        "/api/v1/usage_thresholds",
        {"subscription": subscription["id"], "amount": 5000, "progressive_billing": True},
        format="json",
    )
    assert created.status_code == 201, created.content
    threshold = created.json()
    assert threshold["id"].startswith("uth_") and threshold["kind"] == "amount"
    usage = api.get(f"/api/v1/subscriptions/{subscription['id']}/usage").json()
    assert usage["thresholds"][0]["threshold"] == threshold["id"] and usage["thresholds"][0]["reached_at"] is None

    assert api.delete(f"/api/v1/usage_thresholds/{threshold['id']}").status_code == 204
    assert not UsageThreshold.objects.exists()


def test_threshold_input_is_refused_when_incoherent(api, metered_world):
    _customer, meter, _eu, subscription = metered_world
    both = {"subscription": subscription["id"], "amount": 10, "units": "5", "meter": f"mtr_{meter.pk}"}
    assert_problem(api.post("/api/v1/usage_thresholds", both, format="json"), 400, "usage_threshold_invalid")
    no_meter = {"subscription": subscription["id"], "units": "5"}
    assert_problem(api.post("/api/v1/usage_thresholds", no_meter, format="json"), 400, "usage_threshold_invalid")
    unknown = {"subscription": subscription["id"], "amount": 10, "recurring": True}
    assert_problem(api.post("/api/v1/usage_thresholds", unknown, format="json"), 400)


def test_another_modes_subscription_usage_is_a_404(sandbox_api, metered_world):
    _customer, _meter, _eu, subscription = metered_world
    assert_problem(sandbox_api.get(f"/api/v1/subscriptions/{subscription['id']}/usage"), 404)
