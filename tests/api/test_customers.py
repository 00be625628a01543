from __future__ import annotations

import pytest

from config.events.models import DomainEvent
from customers.models import Customer
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db

NEW_CUSTOMER = {"legal_name": "Boulangerie Martin", "email": "compta@martin.example", "country": "FR"}


def test_create_retrieve_update_list_a_customer(api, brand):
    created = api.post("/api/v1/customers", {**NEW_CUSTOMER, "metadata": {"crm": "42"}}, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["id"].startswith("cus_") and body["object"] == "customer"
    assert body["currency"] == "EUR" and body["metadata"] == {"crm": "42"}
    assert body["created_at"].endswith("Z")
    customer_id = body["id"]

    fetched = api.get(f"/api/v1/customers/{customer_id}").json()
    assert fetched == body | {"updated_at": fetched["updated_at"]}

    updated = api.patch(f"/api/v1/customers/{customer_id}", {"city": "Lyon"}, format="json")
    assert updated.status_code == 200 and updated.json()["city"] == "Lyon"

    listed = api.get("/api/v1/customers").json()
    assert listed["object"] == "list" and [row["id"] for row in listed["data"]] == [customer_id]
    assert DomainEvent.objects.filter(type="customer.created").count() == 1
    assert DomainEvent.objects.filter(type="customer.updated").count() == 1


def test_filter_customers_by_email(api, customer_factory):
    wanted = customer_factory(email="a@x.example")
    customer_factory(email="b@x.example")

    data = api.get("/api/v1/customers", {"email": "A@x.example"}).json()["data"]

    assert [row["id"] for row in data] == [f"cus_{wanted.pk}"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "XYZ"}, "currency"),
        ({"currency": 12}, "currency"),
        ({"country": "ZZ"}, "country"),
        ({"email": "not-an-email"}, "email"),
        ({"legal_name": ""}, "legal_name"),
        ({"test_clock": "clock_999"}, "test_clock"),
        ({"test_clock": "cus_1"}, "test_clock"),
        ({"metadata": "not an object"}, "metadata"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"einvoice_syntax": "pdf"}, "einvoice_syntax"),
    ],
)
def test_bad_customer_input_is_a_4xx_problem_naming_the_field(api, brand, change, field):
    response = api.post("/api/v1/customers", {**NEW_CUSTOMER, **change}, format="json")

    assert 400 <= response.status_code < 500
    body = assert_problem(response, response.status_code)
    assert body["field"] == field, body
    assert Customer.objects.count() == 0


def test_bad_vat_number_is_refused_by_the_model(api, brand):
    response = api.post("/api/v1/customers", {**NEW_CUSTOMER, "tax_id": "FR00000000000"}, format="json")

    body = assert_problem(response, 422)
    assert body["field"] == "tax_id"


def test_unknown_or_mistyped_customer_ids_are_404(api):
    for path in ("/api/v1/customers/cus_999999", "/api/v1/customers/sub_1", "/api/v1/customers/cus_abc"):
        assert_problem(api.get(path), 404)


def test_a_live_key_cannot_put_a_customer_on_a_test_clock(api, sandbox_api, brand):
    clock = sandbox_api.post(
        "/api/v1/test_clocks", {"name": "c", "frozen_time": "2026-01-01T00:00:00Z"}, format="json"
    ).json()

    refused = api.post("/api/v1/customers", {**NEW_CUSTOMER, "test_clock": clock["id"]}, format="json")
    accepted = sandbox_api.post("/api/v1/customers", {**NEW_CUSTOMER, "test_clock": clock["id"]}, format="json")

    # The clock is test mode: for a live key it does not exist (never a 403 telling it does).
    assert assert_problem(refused, 400)["errors"][0] == {
        "field": "test_clock",
        "code": "resource_missing",
        "message": f"No such object: {clock['id']}.",
    }
    assert accepted.status_code == 201 and accepted.json()["test_clock"] == clock["id"]


def test_customer_e_invoice_format_is_set_through_the_api(api, brand):
    # given a customer created without a format (issue 18: auto = the PA's default)
    created = api.post("/api/v1/customers", NEW_CUSTOMER, format="json").json()
    assert created["einvoice_syntax"] == "auto"

    # when an integrator picks UBL
    updated = api.patch(f"/api/v1/customers/{created['id']}", {"einvoice_syntax": "ubl"}, format="json")

    # then it is stored
    assert updated.status_code == 200 and updated.json()["einvoice_syntax"] == "ubl"
    assert Customer.objects.get().einvoice_syntax == "ubl"
