"""Quotes over the API: create, finalize, read, PDF; the key's mode decides what is visible."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from billing.quotes.services import QuoteLineInput
from config.api.keys import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_for(staff_factory):
    owner = staff_factory(username="integrations")

    def make(mode: str = "live") -> APIClient:
        _key, raw = api_key_create(name=f"{mode} key", scope="read_write", mode=mode, created_by=owner)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    return make


def test_create_finalize_read_and_download_a_quote(api_for, make_customer, make_price):
    api = api_for()
    customer, price = make_customer(), make_price(2900)

    created = api.post(
        "/api/v1/quotes",
        {
            "customer": f"cus_{customer.pk}",
            "lines": [
                {"price": f"price_{price.pk}", "quantity": 2},
                {"description": "Formation", "unit_amount": 50000},
            ],
            "terms": "Net 30",
        },
        format="json",
    )

    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["status"], body["number"], body["total"]) == ("draft", "", (5800 + 50000) * 120 // 100)
    finalized = api.post(f"/api/v1/quotes/{body['id']}/finalize")
    assert finalized.status_code == 200 and finalized.json()["number"].startswith("DEV-")
    listed = api.get("/api/v1/quotes", {"status": "open"}).json()
    assert [quote["id"] for quote in listed["data"]] == [body["id"]]
    pdf = api.get(f"/api/v1/quotes/{body['id']}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_refusals_are_problem_json(api_for, make_customer, make_price):
    api = api_for()
    customer = make_customer()

    unknown = api.post("/api/v1/quotes", {"customer": f"cus_{customer.pk}", "lines": [], "color": 1}, format="json")
    no_recurring = api.post(
        "/api/v1/quotes",
        {"customer": f"cus_{customer.pk}", "lines": [{"description": "Setup", "unit_amount": 100}]},
        format="json",
    )

    assert unknown.status_code == 400 and unknown["Content-Type"].startswith("application/problem+json")
    assert no_recurring.status_code == 422
    assert no_recurring.json()["code"] == "no_recurring_price"


def test_another_modes_quote_is_a_404(api_for, open_quote, make_customer, make_price):
    live_quote = open_quote()
    test_quote = open_quote(
        make_customer(livemode=False),
        lines=[QuoteLineInput(price=make_price(100, livemode=False))],
    )
    live, test = api_for("live"), api_for("test")

    assert live.get(f"/api/v1/quotes/qt_{test_quote.pk}").status_code == 404
    assert test.get(f"/api/v1/quotes/qt_{live_quote.pk}").status_code == 404
    assert test.get(f"/api/v1/quotes/qt_{test_quote.pk}").status_code == 200
    assert [quote["id"] for quote in live.get("/api/v1/quotes").json()["data"]] == [f"qt_{live_quote.pk}"]
