"""Contract of /api/v1/credit_grants, /api/v1/wallets and /api/v1/wallet_transactions."""

from __future__ import annotations

import pytest

from billing.wallets.models import CreditGrant
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def buyer(customer_factory, tax_rate_factory):
    tax_rate_factory(country="FR")
    return customer_factory()


def test_grant_list_retrieve_and_void(api, buyer):
    # given a promotional grant made through the API
    response = api.post(
        "/api/v1/credit_grants",
        {"customer": f"cus_{buyer.pk}", "amount": 5000, "currency": "eur", "name": "Welcome", "applies_to": "usage"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["object"], body["status"], body["remaining"], body["currency"]) == (
        "credit_grant",
        "active",
        5000,
        "EUR",
    )
    grant_id = body["id"]
    # then it is listed for its customer and retrievable
    listed = api.get("/api/v1/credit_grants", {"customer": f"cus_{buyer.pk}"}).json()["data"]
    assert [row["id"] for row in listed] == [grant_id]
    assert api.get(f"/api/v1/credit_grants/{grant_id}").json()["amount"] == 5000
    # and the wallet's balance summary shows it
    [wallet] = api.get("/api/v1/wallets", {"customer": f"cus_{buyer.pk}"}).json()["data"]
    assert (wallet["balance"], wallet["pending"]) == (5000, 0)
    # when it is voided, it is gone, and a second void is a conflict
    voided = api.post(f"/api/v1/credit_grants/{grant_id}/void", {"reason": "test"}, format="json")
    assert voided.status_code == 200 and voided.json()["status"] == "voided"
    assert_problem(api.post(f"/api/v1/credit_grants/{grant_id}/void", {}, format="json"), 409, "credit_grant_conflict")
    kinds = [
        row["kind"] for row in api.get("/api/v1/wallet_transactions", {"customer": f"cus_{buyer.pk}"}).json()["data"]
    ]
    assert kinds == ["void", "grant"]


def test_paid_grant_issues_its_purchase_invoice(api, buyer, settings):
    settings.TARIF_COLLECT_ON_ISSUE = False
    response = api.post(
        "/api/v1/credit_grants",
        {"customer": f"cus_{buyer.pk}", "amount": 10000, "currency": "EUR", "category": "paid"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["purchase_invoice"].startswith("in_")
    invoice = api.get(f"/api/v1/invoices/{body['purchase_invoice']}").json()
    assert (invoice["total"], invoice["amount_due"]) == (10000, 10000)


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ({"amount": 100, "currency": "EUR", "colour": "red"}, "colour", "unknown_parameter"),
        ({"amount": 0, "currency": "EUR"}, "amount", None),
        ({"amount": 10**12, "currency": "EUR"}, "amount", None),
        ({"amount": -5, "currency": "EUR"}, "amount", None),
        ({"amount": 100, "currency": "EUR", "priority": 1000}, "priority", None),
        ({"amount": 100, "currency": "EUR", "category": "gift"}, "category", None),
        ({"amount": 100, "currency": "EUR", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at", None),
        ({"amount": 100, "currency": "EUR", "applies_to": "prices"}, "price_ids", None),
    ],
)
def test_grant_refuses_bad_input(api, buyer, payload, field, code):
    response = api.post("/api/v1/credit_grants", {"customer": f"cus_{buyer.pk}", **payload}, format="json")
    assert 400 <= response.status_code < 500, response.content
    body = response.json()
    assert body["field"] == field, body
    if code:
        assert any(error["code"] == code for error in body.get("errors", [])) or body["code"] == code
    assert not CreditGrant.objects.exists()


def test_grant_in_another_currency_is_refused(api, buyer):
    response = api.post(
        "/api/v1/credit_grants", {"customer": f"cus_{buyer.pk}", "amount": 100, "currency": "USD"}, format="json"
    )
    body = assert_problem(response, 409, "wallet_currency")
    assert body["field"] == "currency"


def test_sandbox_key_cannot_grant_to_a_live_customer(sandbox_api, buyer):
    response = sandbox_api.post(
        "/api/v1/credit_grants", {"customer": f"cus_{buyer.pk}", "amount": 100, "currency": "EUR"}, format="json"
    )
    assert 400 <= response.status_code < 500
    assert response.json()["field"] == "customer"
    assert not CreditGrant.objects.exists()


def test_wallet_configure_and_its_bounds(api, buyer):
    ok = api.post(
        "/api/v1/wallets",
        {"customer": f"cus_{buyer.pk}", "currency": "EUR", "top_up_threshold": 2000, "top_up_amount": 10000},
        format="json",
    )
    assert ok.status_code == 200, ok.content
    assert (ok.json()["top_up_threshold"], ok.json()["top_up_amount"]) == (2000, 10000)
    half = api.post(
        "/api/v1/wallets", {"customer": f"cus_{buyer.pk}", "currency": "EUR", "top_up_threshold": 2000}, format="json"
    )
    assert_problem(half, 422, "wallet_refused")
    unknown = api.post("/api/v1/wallets", {"customer": f"cus_{buyer.pk}", "currency": "EUR", "x": 1}, format="json")
    assert_problem(unknown, 400)
    assert unknown.json()["field"] == "x"


def test_read_key_cannot_grant(api_read, buyer):
    response = api_read.post(
        "/api/v1/credit_grants", {"customer": f"cus_{buyer.pk}", "amount": 100, "currency": "EUR"}, format="json"
    )
    assert_problem(response, 403)
