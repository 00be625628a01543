"""Customer balance transactions (read and adjust) and brands (read) over the API."""

from __future__ import annotations

import pytest

from config.events.models import DomainEvent
from invoices.models import BalanceTransaction
from invoices.selectors import customer_balance
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def _url(customer) -> str:
    return f"/api/v1/customers/cus_{customer.pk}/balance_transactions"


def test_a_credit_is_recorded_listed_and_evented(api, customer):
    response = api.post(_url(customer), {"amount": 1500, "currency": "eur", "description": "Goodwill"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("cbtxn_") and body["object"] == "customer_balance_transaction"
    assert (body["amount"], body["currency"], body["kind"], body["customer"]) == (
        1500,
        "EUR",
        "adjustment",
        f"cus_{customer.pk}",
    )
    assert customer_balance(customer_id=customer.pk, currency="EUR") == 1500
    listed = api.get(_url(customer)).json()
    assert listed["object"] == "list" and [row["id"] for row in listed["data"]] == [body["id"]]
    assert DomainEvent.objects.filter(type="customer.balance_transaction.created", customer_id=customer.pk).exists()


def test_a_debit_uses_credit_and_never_makes_the_balance_negative(api, customer):
    api.post(_url(customer), {"amount": 1000, "currency": "EUR", "description": "Credit"}, format="json")

    used = api.post(_url(customer), {"amount": -400, "currency": "EUR", "description": "Correction"}, format="json")
    too_much = api.post(_url(customer), {"amount": -601, "currency": "EUR", "description": "Too much"}, format="json")

    assert used.status_code == 201 and used.json()["amount"] == -400
    assert_problem(too_much, 409, "insufficient_balance")
    assert customer_balance(customer_id=customer.pk, currency="EUR") == 600


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"amount": 0, "currency": "EUR", "description": "x"}, 422, "invalid_amount", None),
        ({"amount": 10**12 + 1, "currency": "EUR", "description": "x"}, 400, "validation_error", "amount"),
        ({"amount": "ten", "currency": "EUR", "description": "x"}, 400, "validation_error", "amount"),
        ({"amount": 100, "currency": "XXQ", "description": "x"}, 400, "validation_error", "currency"),
        ({"amount": 100, "currency": "EUR", "description": ""}, 400, "validation_error", "description"),
        ({"amount": 100, "currency": "EUR"}, 400, "validation_error", "description"),
        (
            {"amount": 100, "currency": "EUR", "description": "x", "kind": "overpayment"},
            400,
            "unknown_parameter",
            "kind",
        ),
    ],
)
def test_bad_adjustments_are_refused(api, customer, body, status, code, field):
    response = api.post(_url(customer), body, format="json")

    problem = assert_problem(response, status, code)
    assert problem["field"] == field
    assert not BalanceTransaction.objects.exists()


def test_adjustment_errors_are_english_by_default(api, customer):
    body = {"amount": -100, "currency": "EUR", "description": "Debit"}

    english = assert_problem(api.post(_url(customer), body, format="json"), 409, "insufficient_balance")

    assert english["detail"].startswith("The customer holds")


def test_an_adjustment_replays_with_its_idempotency_key(api, customer):
    body = {"amount": 700, "currency": "EUR", "description": "Once"}

    first = api.post(_url(customer), body, format="json", HTTP_IDEMPOTENCY_KEY="adjust-1")
    again = api.post(_url(customer), body, format="json", HTTP_IDEMPOTENCY_KEY="adjust-1")

    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert BalanceTransaction.objects.count() == 1


def test_the_list_filters_by_currency_and_refuses_unknown_parameters(api, customer):
    api.post(_url(customer), {"amount": 100, "currency": "EUR", "description": "a"}, format="json")
    api.post(_url(customer), {"amount": 200, "currency": "USD", "description": "b"}, format="json")

    usd = api.get(_url(customer), {"currency": "usd"}).json()["data"]
    unknown = api.get(_url(customer), {"kind": "adjustment"})

    assert [row["amount"] for row in usd] == [200]
    assert assert_problem(unknown, 400, "unknown_parameter")["field"] == "kind"
    assert_problem(api.get(_url(customer), {"currency": "nope"}), 400, "invalid_currency")


def test_another_modes_customer_is_not_found_and_read_keys_cannot_adjust(sandbox_api, api_read, customer):
    body = {"amount": 100, "currency": "EUR", "description": "x"}

    assert_problem(sandbox_api.get(_url(customer)), 404)
    assert_problem(sandbox_api.post(_url(customer), body, format="json"), 404)
    assert api_read.get(_url(customer)).status_code == 200
    assert_problem(api_read.post(_url(customer), body, format="json"), 403)
    assert not BalanceTransaction.objects.exists()


def test_brands_are_listed_and_retrieved_without_bank_details(api, brand_factory):
    brand = brand_factory(slug="nuage", iban="FR7630006000011234567890189", bic="AGRIFRPP")

    listed = api.get("/api/v1/brands").json()
    one = api.get(f"/api/v1/brands/brand_{brand.pk}")

    assert [row["id"] for row in listed["data"]] == [f"brand_{brand.pk}"]
    assert one.status_code == 200
    body = one.json()
    assert body["object"] == "brand" and body["slug"] == "nuage" and body["logo"] is None
    assert "iban" not in body and "bic" not in body and "FR7630006000011234567890189" not in one.content.decode()


def test_brands_are_read_only(api, brand):
    assert_problem(api.post("/api/v1/brands", {"name": "x"}, format="json"), 405)
    assert_problem(api.patch(f"/api/v1/brands/brand_{brand.pk}", {"name": "x"}, format="json"), 405)
    assert_problem(api.get("/api/v1/brands/brand_999999"), 404)
