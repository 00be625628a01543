"""Unknown parameters are refused (400 unknown_parameter naming each), in bodies and query strings."""

from __future__ import annotations

import pytest

from billing.models import Subscription
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def test_trial_end_on_subscription_create_is_refused_not_ignored(api, billing_world):
    customer, price = billing_world

    response = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}], "trial_end": 1767225600},
        format="json",
    )

    problem = assert_problem(response, 400, "unknown_parameter")
    assert problem["field"] == "trial_end"
    assert [error["field"] for error in problem["errors"]] == ["trial_end"]
    assert not Subscription.objects.exists()


def test_every_unknown_parameter_is_listed_and_a_nested_one_is_named_with_its_path(api, billing_world):
    customer, price = billing_world

    response = api.post(
        "/api/v1/subscriptions",
        {
            "customer": f"cus_{customer.pk}",
            "items": [{"price": f"price_{price.pk}", "quantity": 2, "tax_rates": ["txr_1"]}],
            "trial_end": "now",
            "automatic_tax": {"enabled": True},
        },
        format="json",
    )

    problem = assert_problem(response, 400, "unknown_parameter")
    unknown = {error["field"] for error in problem["errors"] if error["code"] == "unknown_parameter"}
    assert unknown == {"trial_end", "automatic_tax", "items[0].tax_rates"}
    assert problem["field"] in unknown


def test_a_read_only_field_sent_on_update_is_unknown(api, customer):
    response = api.patch(f"/api/v1/customers/cus_{customer.pk}", {"created_at": "2020-01-01T00:00:00Z"}, format="json")

    problem = assert_problem(response, 400, "unknown_parameter")
    assert problem["field"] == "created_at"


def test_known_parameters_still_work(api, billing_world):
    customer, price = billing_world

    response = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}], "trial_days": 14},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "trialing"


def test_an_unknown_query_parameter_on_a_list_is_refused(api, customer):
    response = api.get("/api/v1/customers", {"emial": customer.email})

    problem = assert_problem(response, 400, "unknown_parameter")
    assert problem["field"] == "emial"


def test_list_accepts_its_filters_pagination_and_expand(api, customer):
    response = api.get("/api/v1/customers", {"email": customer.email, "limit": 5, "created_after": "2000-01-01T00:00Z"})
    subscriptions = api.get("/api/v1/subscriptions", {"customer": f"cus_{customer.pk}", "expand": "customer"})

    assert response.status_code == 200 and [row["id"] for row in response.json()["data"]] == [f"cus_{customer.pk}"]
    assert subscriptions.status_code == 200


def test_retrieve_accepts_expand_only(api, billing_world):
    _customer, price = billing_world

    assert api.get(f"/api/v1/prices/price_{price.pk}", {"expand": "product"}).status_code == 200
    problem = assert_problem(api.get(f"/api/v1/prices/price_{price.pk}", {"active": "true"}), 400, "unknown_parameter")
    assert problem["field"] == "active"


def test_a_documented_action_parameter_is_accepted_and_others_refused(api):
    missing = api.get("/api/v1/invoices/upcoming", {"subscription": "sub_999999"})
    unknown = api.get("/api/v1/invoices/upcoming", {"subscription": "sub_999999", "customer": "cus_1"})

    assert_problem(missing, 404, "resource_missing")
    assert assert_problem(unknown, 400, "unknown_parameter")["field"] == "customer"


def test_an_action_without_a_body_refuses_parameters(api, billing_world):
    customer, price = billing_world
    created = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}]},
        format="json",
    ).json()

    response = api.post(f"/api/v1/subscriptions/{created['id']}/resume", {"at": "now"}, format="json")

    assert assert_problem(response, 400, "unknown_parameter")["field"] == "at"


def test_report_query_parameters_are_checked(api):
    response = api.get("/api/v1/reports/mrr/", {"start": "2026-01", "stat": "2026-01"})

    assert assert_problem(response, 400, "unknown_parameter")["field"] == "stat"


def test_an_unknown_key_in_one_usage_event_refuses_that_event_only(api, customer, meter):
    good = {"id": "e1", "customer": f"cus_{customer.pk}", "meter": meter.key, "timestamp": "2026-01-01T00:00:00Z"}

    response = api.post(
        "/api/v1/usage_events", {"events": [good, {**good, "id": "e2", "colour": "red"}]}, format="json"
    )

    assert response.status_code == 200, response.content
    codes = {error["index"]: error["code"] for error in response.json()["errors"]}
    assert codes[1] == "unknown_parameter" and codes.get(0) != "unknown_parameter"
