from __future__ import annotations

import pytest

from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def test_events_carry_public_ids_and_filter_by_type(api, billing_world):
    customer, price = billing_world
    subscription = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}]},
        format="json",
    ).json()

    created = api.get("/api/v1/events", {"type": "customer.subscription.created"}).json()["data"]

    assert len(created) == 1
    assert created[0]["object_id"] == subscription["id"] and created[0]["customer"] == f"cus_{customer.pk}"
    assert created[0]["id"].startswith("evt_") and created[0]["occurred_at"].endswith("Z")
    assert api.get(f"/api/v1/events/{created[0]['id']}").json() == created[0]
    finalized = api.get("/api/v1/events", {"type_prefix": "invoice."}).json()["data"]
    assert finalized and all(row["object_id"].startswith("in_") for row in finalized)


def test_test_clock_advance_bills_its_customers(sandbox_api, tax_rate, price_factory, brand_factory):
    brand_factory(is_default=True)
    clock = sandbox_api.post(
        "/api/v1/test_clocks", {"name": "demo", "frozen_time": "2026-01-01T09:00:00Z"}, format="json"
    ).json()
    customer = sandbox_api.post(
        "/api/v1/customers",
        {"legal_name": "Test SAS", "email": "t@example.com", "country": "FR", "test_clock": clock["id"]},
        format="json",
    ).json()
    price = price_factory(unit_amount=1000, livemode=False, product__livemode=False)
    subscription = sandbox_api.post(
        "/api/v1/subscriptions",
        {"customer": customer["id"], "items": [{"price": f"price_{price.pk}"}], "collection_method": "send_invoice"},
        format="json",
    ).json()
    assert subscription["current_period_start"] == "2026-01-01T09:00:00Z"

    advanced = sandbox_api.post(
        f"/api/v1/test_clocks/{clock['id']}/advance", {"frozen_time": "2026-02-15T00:00:00Z"}, format="json"
    )

    assert advanced.status_code == 200, advanced.content
    assert advanced.json()["frozen_time"] == "2026-02-15T00:00:00Z" and advanced.json()["status"] == "ready"
    invoices = sandbox_api.get("/api/v1/invoices", {"subscription": subscription["id"]}).json()["data"]
    assert len(invoices) == 2


@pytest.mark.django_db(transaction=True)
def test_a_clock_only_moves_forward(sandbox_api):
    clock = sandbox_api.post(
        "/api/v1/test_clocks", {"name": "demo", "frozen_time": "2026-01-01T09:00:00Z"}, format="json"
    ).json()

    response = sandbox_api.post(
        f"/api/v1/test_clocks/{clock['id']}/advance", {"frozen_time": "2025-01-01T00:00:00Z"}, format="json"
    )

    assert_problem(response, 422)


def test_wrong_types_are_400_not_500(api):
    for path, body in [
        ("/api/v1/products", {"name": ["list"]}),
        ("/api/v1/products", "just a string"),
        ("/api/v1/customers", {"legal_name": {"a": 1}, "email": 5, "country": None}),
        ("/api/v1/refunds", {"payment": None, "amount": "x", "reason": 3}),
        ("/api/v1/credit_notes", {"invoice": [], "amount": -1, "reason": "nope"}),
    ]:
        response = api.post(path, body, format="json")
        assert_problem(response, 400, "validation_error")


def test_malformed_json_and_wrong_content_type_are_problems(api):
    assert_problem(api.generic("POST", "/api/v1/products", "{not json", content_type="application/json"), 400)
    assert_problem(api.generic("POST", "/api/v1/products", "name=x", content_type="text/plain"), 415)


def test_unknown_routes_and_methods_are_problems(api):
    assert_problem(api.get("/api/v1/nothing-here"), 404, "not_found")
    assert_problem(api.delete("/api/v1/products"), 405)


@pytest.mark.django_db(transaction=True)
def test_a_customer_without_any_brand_is_a_conflict_not_a_500(api, customer_factory, price_factory):
    customer = customer_factory(brand=None)
    price = price_factory()

    response = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}]},
        format="json",
    )

    assert_problem(response, 409, "no_brand_configured")
