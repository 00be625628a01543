"""Stateful and edge requests that used to answer 500: each is now a problem+json 4xx.

Issue 13, hole 5: cancel/pause on a canceled subscription, a resume hitting the
one-renewal-per-period constraint, a malformed pagination cursor, a body over the upload
limit, deeply nested JSON, an id of the wrong type in a list filter.
"""

from __future__ import annotations

import base64
import json

import pytest
from django.db import transaction
from django.test import override_settings

from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def _subscribe(api, customer, price):
    response = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_cancel_and_pause_of_a_canceled_subscription_are_conflicts(api, billing_world):
    # given a canceled subscription
    customer, price = billing_world
    url = f"/api/v1/subscriptions/{_subscribe(api, customer, price)['id']}"
    assert api.post(f"{url}/cancel", {"at_period_end": False}, format="json").status_code == 200

    # when it is canceled or paused again (each request in its own savepoint, as in production
    # where each request is its own transaction)
    with transaction.atomic():
        cancel = api.post(f"{url}/cancel", {"at_period_end": False}, format="json")
    with transaction.atomic():
        pause = api.post(f"{url}/pause", {}, format="json")

    # then both are 409 conflicts naming the invalid state, not 500s
    assert_problem(cancel, 409, "invalid_transition")
    assert_problem(pause, 409, "invalid_transition")


def test_pause_resume_twice_at_one_instant_is_a_conflict_not_a_constraint_crash(
    sandbox_api, tax_rate, price_factory, brand_factory
):
    # given a subscription on a test clock (time stands still between requests)
    brand_factory(is_default=True)
    clock = sandbox_api.post(
        "/api/v1/test_clocks", {"name": "still", "frozen_time": "2026-01-01T09:00:00Z"}, format="json"
    ).json()
    customer = sandbox_api.post(
        "/api/v1/customers",
        {"legal_name": "Still SAS", "email": "s@example.com", "country": "FR", "test_clock": clock["id"]},
        format="json",
    ).json()
    price = price_factory(unit_amount=2900, livemode=False, product__livemode=False)
    subscription = sandbox_api.post(
        "/api/v1/subscriptions",
        {"customer": customer["id"], "items": [{"price": f"price_{price.pk}"}]},
        format="json",
    ).json()
    url = f"/api/v1/subscriptions/{subscription['id']}"
    assert sandbox_api.post(f"{url}/pause", {}, format="json").status_code == 200
    assert sandbox_api.post(f"{url}/resume", format="json").status_code == 200
    assert sandbox_api.post(f"{url}/pause", {}, format="json").status_code == 200

    # when it resumes a second time at the same instant (a second renewal of the same period)
    with transaction.atomic():
        again = sandbox_api.post(f"{url}/resume", format="json")

    # then it is refused as a conflict and the subscription stays paused
    assert_problem(again, 409)
    assert sandbox_api.get(url).json()["status"] == "paused"


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64!!",
        base64.b64encode(b"p=abc").decode(),
        base64.b64encode(b"p=99999999999999999999999999").decode(),
        base64.b64encode(b"o=-5&r=1").decode(),
        base64.b64encode(b"p=\x00").decode(),
        "%%%",  # base64 decoding skips what is not base64: an empty cursor, the first page
        "cD0xMDI=\n",
    ],
)
def test_a_malformed_cursor_is_a_400(api, billing_world, cursor):
    # given some customers to page through
    # when the list is asked with a cursor the API never produced
    response = api.get("/api/v1/customers", {"cursor": cursor})

    # then it is a 400 problem naming the cursor
    body = assert_problem(response, 400, "invalid_cursor")
    assert body["field"] == "cursor"


@pytest.mark.parametrize("limit", ["0", "-1", "101", "1000000000", "abc", "1.5", "", "٣"])
def test_a_limit_outside_1_to_100_is_a_400_not_another_page_size(api, billing_world, limit):
    response = api.get("/api/v1/customers", {"limit": limit})

    body = assert_problem(response, 400, "invalid_limit")
    assert body["field"] == "limit"


@pytest.mark.parametrize("limit", ["1", "100"])
def test_the_limits_bounds_are_accepted(api, customer_factory, limit):
    for _ in range(2):
        customer_factory()
    response = api.get("/api/v1/customers", {"limit": limit})
    assert response.status_code == 200 and len(response.json()["data"]) == min(int(limit), 2)


def test_a_valid_cursor_still_pages(api, customer_factory):
    for _ in range(3):
        customer_factory()
    first = api.get("/api/v1/customers", {"limit": 2}).json()
    assert first["has_more"] is True
    second = api.get(first["next"])
    assert second.status_code == 200 and len(second.json()["data"]) == 1


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
@pytest.mark.parametrize("idempotency_key", [None, "too-big-1"])
def test_a_body_over_the_upload_limit_is_a_413(api, idempotency_key):
    # given a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"legal_name": "x" * 20_000, "email": "big@example.com", "country": "FR"})
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}

    # when it is posted
    response = api.generic("POST", "/api/v1/customers", body, content_type="application/json", **headers)

    # then the API answers 413 problem+json
    assert_problem(response, 413, "request_too_large")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_console_form_over_the_upload_limit_is_a_413_page(console):
    from django.urls import reverse

    response = console.post(reverse("admin:customers_customer_add"), {"legal_name": "x" * 20_000, "country": "FR"})

    assert response.status_code == 413


@pytest.mark.parametrize("depth", [200, 5_000, 100_000])
def test_deeply_nested_json_is_a_400(api, depth):
    # given JSON nested deeper than any real request (a RecursionError in the parser or serializer)
    body = '{"legal_name": "N", "email": "n@example.com", "country": "FR", "metadata": {"a": ' + "[" * depth
    body += "]" * depth + "}}"

    # when it is posted
    response = api.generic("POST", "/api/v1/customers", body, content_type="application/json")

    # then it is refused as a parse error, never a 500
    assert_problem(response, 400, "parse_error")


def test_reasonably_nested_metadata_still_parses(api):
    body = {"legal_name": "N", "email": "n@example.com", "country": "FR", "metadata": {"a": "1"}}
    response = api.post("/api/v1/customers", body, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("resource", "parameter", "value"),
    [
        ("subscriptions", "customer", "sub_5"),
        ("subscriptions", "customer", "cus_x"),
        ("invoice_items", "subscription", "cus_1"),
        ("payments", "invoice", "sub_5"),
        ("events", "customer", "42"),
        ("invoices", "customer", "sub_5"),
        ("invoices", "subscription", "in_1"),
        ("credit_notes", "invoice", "cus_1"),
        ("prices", "product", "price_1"),
    ],
)
def test_an_id_of_the_wrong_type_in_a_filter_is_a_400(api, resource, parameter, value):
    # when a list is filtered by an id of the wrong type or shape
    response = api.get(f"/api/v1/{resource}", {parameter: value})

    # then it is a 400 naming the parameter, not an empty list
    body = assert_problem(response, 400, "invalid_id")
    assert body["field"] == parameter


def test_a_well_formed_unknown_id_in_a_filter_is_an_empty_list(api):
    response = api.get("/api/v1/subscriptions", {"customer": "cus_999999"})
    assert response.status_code == 200 and response.json()["data"] == []


@pytest.mark.parametrize("timezone", ["𝕿𝖆𝖗𝖎𝖋 🧾 " * 60, "A" * 5000, "../../../../etc/passwd"])
def test_a_time_zone_name_too_long_for_the_file_system_is_a_400(api, customer_factory, timezone):
    # given a customer; when its time zone is set to a name longer than a file name may be
    customer = customer_factory()
    with transaction.atomic():
        response = api.patch(f"/api/v1/customers/cus_{customer.pk}", {"timezone": timezone}, format="json")

    # then it is a validation error, not an OSError (500)
    assert_problem(response, 400)
