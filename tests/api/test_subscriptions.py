"""Subscriptions over the API: create, preview a change, change, cancel, pause, resume; and refusals."""

from __future__ import annotations

import pytest

from billing.models import Subscription, SubscriptionChange
from invoices.models import Invoice
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def subscribe(api, customer, price, **extra):
    response = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}", "quantity": 2}], **extra},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_create_issues_the_first_invoice(api, billing_world):
    customer, price = billing_world

    body = subscribe(api, customer, price)

    assert body["id"].startswith("sub_") and body["status"] == "active" and body["currency"] == "EUR"
    assert body["items"][0]["price"] == f"price_{price.pk}" and body["items"][0]["quantity"] == 2
    invoices = api.get("/api/v1/invoices", {"subscription": body["id"]}).json()["data"]
    assert len(invoices) == 1
    assert invoices[0]["subtotal"] == 5800 and invoices[0]["tax_total"] == 1160 and invoices[0]["total"] == 6960
    assert invoices[0]["currency"] == "EUR" and invoices[0]["number"]
    expanded = api.get(f"/api/v1/subscriptions/{body['id']}", {"expand": "customer"}).json()
    assert expanded["customer"]["id"] == f"cus_{customer.pk}"


def test_preview_change_writes_nothing_and_matches_the_change(api, billing_world, price_factory):
    customer, price = billing_world
    bigger = price_factory(unit_amount=9900, product=price.product)
    subscription = subscribe(api, customer, price)
    change = {"items": [{"price": f"price_{bigger.pk}", "quantity": 2}], "proration_behavior": "always_invoice"}
    changes_before = SubscriptionChange.objects.count()

    preview = api.post(f"/api/v1/subscriptions/{subscription['id']}/preview_change", change, format="json")

    assert preview.status_code == 200, preview.content
    body = preview.json()
    assert body["object"] == "subscription_change_preview"
    assert body["proration_total"] > 0 and body["immediate_invoice"]["currency"] == "EUR"
    assert body["upcoming_invoice"]["lines"][0]["price"] == f"price_{bigger.pk}"
    assert SubscriptionChange.objects.count() == changes_before
    assert Invoice.objects.count() == 1

    changed = api.post(f"/api/v1/subscriptions/{subscription['id']}/change", change, format="json")

    assert changed.status_code == 200, changed.content
    assert changed.json()["items"][0]["price"] == f"price_{bigger.pk}"
    immediate = Invoice.objects.order_by("-pk").first()
    assert immediate.total == body["immediate_invoice"]["total"]


def test_cancel_at_period_end_then_now(api, billing_world):
    customer, price = billing_world
    subscription = subscribe(api, customer, price)
    url = f"/api/v1/subscriptions/{subscription['id']}"

    later = api.post(f"{url}/cancel", {"at_period_end": True}, format="json").json()
    assert later["cancel_at_period_end"] is True and later["status"] == "active"

    now = api.post(f"{url}/cancel", {"at_period_end": False, "reason": "too expensive"}, format="json")
    assert now.status_code == 200, now.content
    assert now.json()["status"] == "canceled" and now.json()["ended_at"]


def test_pause_and_resume(api, billing_world):
    customer, price = billing_world
    subscription = subscribe(api, customer, price)
    url = f"/api/v1/subscriptions/{subscription['id']}"

    paused = api.post(f"{url}/pause", {}, format="json")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"

    resumed = api.post(f"{url}/resume", format="json")
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([{"price": "price_999999"}], "items[0].price"),
        ([{"price": "cus_1"}], "items[0].price"),
        ([{"price": 5}], "items[0].price"),
        ([{"price": "PRICE", "quantity": 1}], "items[0].price"),
        ([], "items"),
        ("all of them", "items"),
    ],
)
def test_bad_items_are_400_naming_the_field(api, billing_world, items, field):
    customer, _price = billing_world

    response = api.post("/api/v1/subscriptions", {"customer": f"cus_{customer.pk}", "items": items}, format="json")

    assert assert_problem(response, 400, "validation_error")["field"] == field


@pytest.mark.parametrize("quantity", [-1, 0, "two", 1.5, True, None])
def test_bad_quantities_are_refused(api, billing_world, quantity):
    customer, price = billing_world

    response = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}", "quantity": quantity}]},
        format="json",
    )

    assert assert_problem(response, 400)["field"] == "items[0].quantity"


def test_unknown_customer_is_refused(api, billing_world):
    _customer, price = billing_world

    response = api.post(
        "/api/v1/subscriptions", {"customer": "cus_424242", "items": [{"price": f"price_{price.pk}"}]}, format="json"
    )

    body = assert_problem(response, 400)
    assert body["field"] == "customer" and body["errors"][0]["code"] == "resource_missing"


@pytest.mark.django_db(transaction=True)
def test_a_price_in_another_currency_than_the_subscription_is_refused(api, billing_world, price_factory):
    customer, price = billing_world
    subscription = subscribe(api, customer, price)
    dollars = price_factory(currency="USD", unit_amount=3000)

    response = api.post(
        f"/api/v1/subscriptions/{subscription['id']}/change",
        {"items": [{"price": f"price_{dollars.pk}"}]},
        format="json",
    )

    body = assert_problem(response, 422, "currency_change")
    assert "USD" in body["detail"]
    assert Subscription.objects.get().items.get().price_id == price.pk


@pytest.mark.django_db(transaction=True)
def test_mixed_currencies_on_create_are_refused(api, billing_world, price_factory):
    customer, price = billing_world
    dollars = price_factory(currency="USD", unit_amount=3000)

    response = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}, {"price": f"price_{dollars.pk}"}]},
        format="json",
    )

    assert_problem(response, 422, "mixed_currencies")
    assert not Subscription.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_resuming_an_active_subscription_is_refused(api, billing_world):
    customer, price = billing_world
    subscription = subscribe(api, customer, price)

    assert_problem(api.post(f"/api/v1/subscriptions/{subscription['id']}/resume"), 422, "not_paused")


def test_filters_by_customer_and_status(api, billing_world, customer_factory):
    customer, price = billing_world
    mine = subscribe(api, customer, price)
    subscribe(api, customer_factory(), price)

    data = api.get("/api/v1/subscriptions", {"customer": f"cus_{customer.pk}", "status": "active"}).json()["data"]

    assert [row["id"] for row in data] == [mine["id"]]
    # issue 13: a malformed id in a filter is the caller's mistake, not an empty list
    assert_problem(api.get("/api/v1/subscriptions", {"customer": "garbage"}), 400, "invalid_id")


def test_a_read_only_key_may_preview_but_not_change(api, api_read, billing_world):
    customer, price = billing_world
    subscription = subscribe(api, customer, price)
    change = {"items": [{"price": f"price_{price.pk}", "quantity": 3}]}

    preview = api_read.post(f"/api/v1/subscriptions/{subscription['id']}/preview_change", change, format="json")
    refused = api_read.post(f"/api/v1/subscriptions/{subscription['id']}/change", change, format="json")

    assert preview.status_code == 200
    assert_problem(refused, 403)


def test_preview_of_a_new_subscription_writes_nothing_and_is_its_first_invoice(api, api_read, billing_world):
    customer, price = billing_world
    body = {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}", "quantity": 2}]}

    preview = api_read.post("/api/v1/subscriptions/preview", body, format="json")

    assert preview.status_code == 200, preview.content
    data = preview.json()
    assert data["object"] == "subscription_create_preview" and data["status"] == "active"
    assert not Subscription.objects.exists() and not Invoice.objects.exists()
    created = subscribe(api, customer, price)
    invoice = Invoice.objects.get()
    assert data["first_invoice"]["total"] == invoice.total == 6960
    assert data["current_period_end"] == created["current_period_end"]


def test_cancel_at_a_date_in_the_past_is_refused(api, billing_world):
    customer, price = billing_world
    subscription = subscribe(api, customer, price)

    past = api.post(
        f"/api/v1/subscriptions/{subscription['id']}/cancel", {"cancel_at": "2000-01-01T00:00Z"}, format="json"
    )

    assert_problem(past, 422, "cancel_at_past")


def test_cancel_at_a_date_keeps_the_subscription_active_until_then(api, billing_world):
    customer, price = billing_world
    subscription = subscribe(api, customer, price)

    later = api.post(
        f"/api/v1/subscriptions/{subscription['id']}/cancel", {"cancel_at": "2099-01-01T00:00Z"}, format="json"
    )

    assert later.status_code == 200, later.content
    assert later.json()["cancel_at"] == "2099-01-01T00:00:00Z" and later.json()["status"] == "active"


@pytest.mark.django_db(transaction=True)
def test_a_canceled_subscription_refuses_every_further_action_with_a_problem(api, billing_world):
    """Hostile sequence: cancel twice, then resume, pause and change the ended subscription.

    Transactional: each request commits or rolls back on its own, as in production (a refusal
    leaves the test's shared transaction marked for rollback otherwise)."""
    customer, price = billing_world
    subscription = subscribe(api, customer, price)
    url = f"/api/v1/subscriptions/{subscription['id']}"
    assert api.post(f"{url}/cancel", {"at_period_end": False}, format="json").status_code == 200

    answers = {
        "cancel again": api.post(f"{url}/cancel", {"at_period_end": False}, format="json"),
        "cancel at period end": api.post(f"{url}/cancel", {"at_period_end": True}, format="json"),
        "resume": api.post(f"{url}/resume", format="json"),
        "pause": api.post(f"{url}/pause", {}, format="json"),
        "change": api.post(f"{url}/change", {"items": [{"price": f"price_{price.pk}", "quantity": 2}]}, format="json"),
    }

    for action, answer in answers.items():
        assert 400 <= answer.status_code < 500, (action, answer.status_code, answer.content)
        assert answer["Content-Type"].startswith("application/problem+json"), action
    assert api.get(url).json()["status"] == "canceled"
