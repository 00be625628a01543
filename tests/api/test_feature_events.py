"""Feature usage reported over the API becomes a domain event that feedback surveys wait for."""

from __future__ import annotations

import pytest

from config.events.models import DomainEvent
from feedback.services.triggers import FEATURE_EVENT
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def test_reporting_a_feature_event_records_it_for_the_customer(api, customer):
    response = api.post(
        "/api/v1/feature_events",
        {"customer": f"cus_{customer.pk}", "feature": "export.csv", "occurred_at": "2026-11-20T10:00:00Z"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["object"] == "feature_event" and body["customer"] == f"cus_{customer.pk}"
    assert body["occurred_at"] == "2026-11-20T10:00:00Z"
    event = DomainEvent.objects.get(type=FEATURE_EVENT)
    assert event.customer_id == customer.pk and event.data == {"feature": "export.csv"}


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"feature": "no spaces please"}, 422, "invalid_feature_event"),
        ({"customer": "cus_999999"}, 400, None),
        ({"customer": "sub_1"}, 400, None),
        ({"feature": ""}, 400, None),
        ({"occurred_at": "yesterday"}, 400, None),
    ],
)
def test_bad_feature_events_are_problems_and_record_nothing(api, customer, payload, status, code):
    body = {"customer": f"cus_{customer.pk}", "feature": "export", **payload}

    response = api.post("/api/v1/feature_events", body, format="json")

    assert_problem(response, status, code)
    assert not DomainEvent.objects.filter(type=FEATURE_EVENT).exists()


def test_a_read_only_key_cannot_report_feature_events(api_read, customer):
    response = api_read.post(
        "/api/v1/feature_events", {"customer": f"cus_{customer.pk}", "feature": "x"}, format="json"
    )

    assert response.status_code == 403
    assert not DomainEvent.objects.filter(type=FEATURE_EVENT).exists()


def test_options_describes_the_endpoint(api):
    response = api.options("/api/v1/feature_events")

    assert response.status_code == 200
    assert set(response.json()["actions"]["POST"]) >= {"customer", "feature", "occurred_at"}
