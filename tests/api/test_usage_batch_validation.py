"""POST /api/v1/usage_events validates a batch in one pass (issue 20, ingestion speed):
the same rules and the same problem+json errors as DRF's per-item validation gave, each
bad event reported at its position in the batch while the others are stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.limits import MAX_USAGE_VALUE
from billing.models import Meter, UsageEvent
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db

URL = "/api/v1/usage_events"
NOT_A_DICT = 'Expected a dictionary of items but got type "{}".'


def _errors(*items):
    return [{"field": field, "code": code, "message": message} for field, code, message in items]


# Bodies refused whole, with the problem DRF's ListField(child=DictField()) gave before
# (recorded from the previous implementation): code, field, and every error in order.
MALFORMED = [
    ({}, "validation_error", _errors(("events", "required", "This field is required."))),
    ({"events": []}, "validation_error", _errors(("events", "empty", "This list may not be empty."))),
    ({"events": None}, "validation_error", _errors(("events", "null", "This field may not be null."))),
    (
        {"events": "x"},
        "validation_error",
        _errors(("events", "not_a_list", 'Expected a list of items but got type "str".')),
    ),
    (
        {"events": {"a": 1}},
        "validation_error",
        _errors(("events", "not_a_list", 'Expected a list of items but got type "dict".')),
    ),
    (
        {"events": [{"id": "a"}, 5, "s", None, []]},
        "validation_error",
        _errors(
            ("events[1]", "not_a_dict", NOT_A_DICT.format("int")),
            ("events[2]", "not_a_dict", NOT_A_DICT.format("str")),
            ("events[3]", "null", "This field may not be null."),
            ("events[4]", "not_a_dict", NOT_A_DICT.format("list")),
        ),
    ),
    (
        {"events": [{}] * 1001},
        "validation_error",
        _errors(("events", "max_length", "Ensure this field has no more than 1000 elements.")),
    ),
    (
        [],
        "validation_error",
        _errors((None, "invalid", "Invalid data. Expected a dictionary, but got list.")),
    ),
    (
        {"events": [{"id": "a"}], "colour": "red"},
        "unknown_parameter",
        _errors(("colour", "unknown_parameter", "Unknown parameter: colour.")),
    ),
]


@pytest.mark.parametrize(("body", "code", "errors"), MALFORMED)
def test_a_malformed_batch_is_one_problem_naming_each_bad_item(api, body, code, errors):
    response = api.post(URL, body, format="json")

    problem = assert_problem(response, 400, code)
    assert problem["errors"] == errors
    assert problem["field"] == errors[0]["field"]
    assert not UsageEvent.objects.exists()


def test_items_that_are_not_objects_are_reported_before_the_batch_size(api):
    # DRF's order: each item first, then the list's length.
    problem = assert_problem(api.post(URL, {"events": [1] * 1001}, format="json"), 400)

    assert [error["field"] for error in problem["errors"]] == [f"events[{n}]" for n in range(1001)]


def _now():
    return datetime.now(tz=UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def good(customer, meter):
    def make(n, **changes):
        return {
            "id": f"e{n}",
            "customer": f"cus_{customer.pk}",
            "meter": meter.key,
            "timestamp": _now().isoformat(),
            "value": 3,
            "properties": {"region": "eu"},
            **changes,
        }

    return make


LONG_PROPERTY_NAME = "k" * 41
# (what the bad event changes, the error code): every rule, the API's parsing and the service's.
RULES = [
    ({"colour": "red"}, "unknown_parameter"),
    ({"customer": "sub_1"}, "invalid_customer"),
    ({"customer": "cus_abc"}, "invalid_customer"),
    ({"customer": 5}, "invalid_customer"),
    ({"customer": "cus_999999999"}, "unknown_customer"),
    ({"timestamp": "yesterday"}, "invalid_timestamp"),
    ({"timestamp": 1700000000}, "invalid_timestamp"),
    ({"timestamp": "2026-02-30T00:00:00Z"}, "invalid_timestamp"),
    ({"timestamp": "2026-01-15T09:00:00"}, "naive_timestamp"),
    ({"timestamp": "2999-01-01T00:00:00Z"}, "future_timestamp"),
    ({"value": "many"}, "invalid_value"),
    ({"value": True}, "invalid_value"),
    ({"value": [1]}, "invalid_value"),
    ({"value": "0.0000001"}, "invalid_value"),
    ({"value": -5}, "negative_value"),
    ({"value": MAX_USAGE_VALUE + 1}, "out_of_bounds"),
    ({"id": ""}, "invalid_external_id"),
    ({"id": "x" * 101}, "invalid_external_id"),
    ({"id": None}, "invalid_external_id"),
    ({"meter": "nope"}, "unknown_meter"),
    ({"unique_value": "u" * 201}, "invalid_unique_value"),
    ({"properties": "eu"}, "invalid_properties"),
    ({"properties": []}, "invalid_properties"),
    ({"properties": {f"p{n}": "v" for n in range(11)}}, "invalid_properties"),
    ({"properties": {LONG_PROPERTY_NAME: "v"}}, "invalid_properties"),
    ({"properties": {"": "v"}}, "invalid_properties"),
    ({"properties": {"region": 5}}, "invalid_properties"),
    ({"properties": {"region": "v" * 101}}, "invalid_properties"),
    ({"properties": {"region": {"nested": "eu"}}}, "invalid_properties"),
]


@pytest.mark.parametrize(("change", "code"), RULES, ids=[f"{code}-{n}" for n, (_c, code) in enumerate(RULES)])
def test_each_rule_reports_the_bad_event_at_its_position(api, good, change, code):
    batch = [good(0), good(1), good(2, **change), good(3)]

    response = api.post(URL, {"events": batch}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert [(error["index"], error["code"]) for error in body["errors"]] == [(2, code)]
    assert body["errors"][0]["message"]
    shown = change.get("id", "e2")
    assert body["errors"][0]["id"] == (shown if isinstance(shown, str) else "")
    assert (body["accepted"], body["duplicates"]) == (3, 0)
    assert sorted(UsageEvent.objects.values_list("external_id", flat=True)) == ["e0", "e1", "e3"]


def test_a_unique_count_meter_needs_the_value_to_count(api, customer, meter_factory):
    users = meter_factory(aggregation=Meter.Aggregation.UNIQUE_COUNT)
    event = {"customer": f"cus_{customer.pk}", "meter": users.key, "timestamp": _now().isoformat()}

    body = api.post(
        URL, {"events": [{**event, "id": "a", "unique_value": "u1"}, {**event, "id": "b"}]}, format="json"
    ).json()

    assert [(error["index"], error["code"]) for error in body["errors"]] == [(1, "missing_unique_value")]
    assert body["accepted"] == 1


def test_an_event_older_than_the_retention_is_refused_at_its_position(api, good, settings):
    settings.TARIF_USAGE_RAW_RETENTION_DAYS = 30
    old = (_now() - timedelta(days=60)).isoformat()

    body = api.post(URL, {"events": [good(0), good(1, timestamp=old)]}, format="json").json()

    assert [(error["index"], error["code"]) for error in body["errors"]] == [(1, "too_old")]


def test_a_customer_of_the_other_mode_is_unknown(api, good, customer_factory):
    sandbox_customer = customer_factory(livemode=False)

    body = api.post(URL, {"events": [good(0, customer=f"cus_{sandbox_customer.pk}")]}, format="json").json()

    assert [(error["index"], error["code"]) for error in body["errors"]] == [(0, "unknown_customer")]
    assert not UsageEvent.objects.exists()


def test_errors_of_both_stages_come_back_in_batch_order(api, good):
    # The API's parsing refuses some events, the service others: positions are the batch's.
    batch = [good(0, value=-1), good(1, customer="x"), good(2), good(3, meter="nope"), good(4, timestamp="x")]

    body = api.post(URL, {"events": batch}, format="json").json()

    assert [(error["index"], error["code"]) for error in body["errors"]] == [
        (0, "negative_value"),
        (1, "invalid_customer"),
        (3, "unknown_meter"),
        (4, "invalid_timestamp"),
    ]
    assert body["accepted"] == 1


def test_an_id_repeated_in_a_batch_and_sent_again_is_stored_once(api, good):
    first = api.post(URL, {"events": [good(0), good(0, value=9), good(1)]}, format="json").json()
    again = api.post(URL, {"events": [good(1), good(2)]}, format="json").json()

    assert (first["accepted"], first["duplicates"]) == (2, 1)
    assert (again["accepted"], again["duplicates"]) == (1, 1)
    assert UsageEvent.objects.get(external_id="e0").value == 3  # the first occurrence counts
