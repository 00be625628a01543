"""/api/v1/checkout/sessions: create, list, retrieve, expire; modes, strict parameters, problem+json."""

from __future__ import annotations

import pytest

from billing.checkout.models import CheckoutSession
from tests.api.conftest import _fresh_cache, assert_problem, client_for, make_key  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

URL = "/api/v1/checkout/sessions"


@pytest.fixture
def live_api(make_key):  # noqa: F811
    return client_for(make_key()[1])


@pytest.fixture
def test_api(make_key):  # noqa: F811
    return client_for(make_key(mode="test")[1])


def body(price, **overrides):
    data = {
        "mode": "subscription",
        "line_items": [{"price": f"price_{price.pk}", "quantity": 2}],
        "success_url": "https://shop.example/ok?cs={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example/pricing",
    }
    data.update(overrides)
    return data


def test_create_returns_the_session_and_its_url(live_api, seller, monthly, settings):
    settings.TARIF_BASE_URL = "https://billing.example"
    response = live_api.post(URL, body(monthly, trial_period_days=7, metadata={"plan": "pro"}), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["object"] == "checkout.session" and data["status"] == "open" and data["livemode"] is True
    assert data["id"].startswith("cs_live_") and data["url"] == f"https://billing.example/checkout/{data['id']}/"
    assert data["line_items"] == [{"object": "item", "price": f"price_{monthly.pk}", "quantity": 2}]
    assert data["brand"] == f"brand_{seller.pk}" and data["origin"] == "api" and data["metadata"] == {"plan": "pro"}


def test_list_retrieve_and_expire(live_api, seller, monthly):
    created = live_api.post(URL, body(monthly), format="json").json()
    listed = live_api.get(URL).json()
    assert [item["id"] for item in listed["data"]] == [created["id"]]
    assert live_api.get(f"{URL}/{created['id']}").json()["status"] == "open"
    expired = live_api.post(f"{URL}/{created['id']}/expire")
    assert expired.status_code == 200 and expired.json()["status"] == "expired" and expired.json()["url"] is None
    assert_problem(live_api.post(f"{URL}/{created['id']}/expire"), 409, "checkout_session_closed")


def test_a_test_key_cannot_use_a_live_price_nor_see_live_sessions(live_api, test_api, seller, monthly, price_factory):
    refused = test_api.post(URL, body(monthly), format="json")
    assert_problem(refused, 400)
    assert "line_items" in refused.content.decode()
    test_price = price_factory(livemode=False)
    created = test_api.post(URL, body(test_price), format="json")
    assert created.status_code == 201 and created.json()["id"].startswith("cs_test_")
    live = live_api.post(URL, body(monthly), format="json").json()
    assert test_api.get(f"{URL}/{live['id']}").status_code == 404
    assert live_api.get(f"{URL}/{created.json()['id']}").status_code == 404
    assert [item["id"] for item in test_api.get(URL).json()["data"]] == [created.json()["id"]]
    assert test_api.post(f"{URL}/{live['id']}/expire").status_code == 404


def test_unknown_parameters_are_refused(live_api, seller, monthly):
    assert_problem(live_api.post(URL, body(monthly, colour="red"), format="json"), 400, "unknown_parameter")
    nested = body(monthly)
    nested["line_items"][0]["discount"] = 5
    assert_problem(live_api.post(URL, nested, format="json"), 400)
    assert not CheckoutSession.objects.exists()


def test_business_refusals_are_problem_json(live_api, seller, monthly, one_time):
    assert_problem(live_api.post(URL, body(monthly, success_url="/relative"), format="json"), 422, "invalid_url")
    assert_problem(
        live_api.post(URL, body(monthly, mode="payment"), format="json"), 422, "recurring_price_in_payment"
    )
    assert_problem(live_api.post(URL, body(one_time), format="json"), 422, "no_recurring_price")
    assert_problem(live_api.post(URL, body(monthly, mode="barter"), format="json"), 400)


def test_idempotency_key_returns_the_same_session(live_api, seller, monthly):
    first = live_api.post(URL, body(monthly), format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    again = live_api.post(URL, body(monthly), format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.json()["id"] == again.json()["id"] and CheckoutSession.objects.count() == 1


def test_the_schema_documents_the_endpoints(live_api, seller):
    schema = live_api.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/checkout/sessions"])
    assert "/api/v1/checkout/sessions/{id}/expire" in paths
