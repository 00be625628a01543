from __future__ import annotations

import pytest

from billing.models import Price
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db

MONTHLY = {"kind": "interval", "unit": "month", "count": 1}


def test_products_and_prices(api):
    product = api.post("/api/v1/products", {"name": "Pro", "unit_label": "seat"}, format="json")
    assert product.status_code == 201
    product_id = product.json()["id"]
    assert product_id.startswith("prod_")

    price = api.post(
        "/api/v1/prices",
        {"product": product_id, "currency": "EUR", "unit_amount": "1500", "cycle": MONTHLY, "nickname": "Pro monthly"},
        format="json",
    )

    assert price.status_code == 201, price.content
    body = price.json()
    assert body["id"].startswith("price_") and body["product"] == product_id and body["currency"] == "EUR"
    expanded = api.get(f"/api/v1/prices/{body['id']}", {"expand": "product"}).json()
    assert expanded["product"]["name"] == "Pro"
    assert [row["id"] for row in api.get("/api/v1/prices", {"product": product_id}).json()["data"]] == [body["id"]]
    archived = api.patch(f"/api/v1/prices/{body['id']}", {"active": False}, format="json")
    assert archived.status_code == 200 and archived.json()["active"] is False
    renamed = api.patch(f"/api/v1/products/{product_id}", {"name": "Pro+"}, format="json")
    assert renamed.json()["name"] == "Pro+"


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"currency": "ABC"}, 400, "currency"),
        ({"unit_amount": "-1"}, 400, "unit_amount"),
        ({"unit_amount": "lots"}, 400, "unit_amount"),
        ({"cycle": None}, 422, "cycle"),
        ({"cycle": {"kind": "interval", "unit": "fortnight"}}, 422, "cycle"),
        ({"product": "prod_999999"}, 400, "product"),
        ({"product": 12}, 400, "product"),
        ({"type": "weekly"}, 400, "type"),
    ],
)
def test_bad_prices_are_refused(api, product, change, status, field):
    body = {"product": f"prod_{product.pk}", "currency": "EUR", "unit_amount": "100", "cycle": MONTHLY}

    response = api.post("/api/v1/prices", {**body, **change}, format="json")

    problem = assert_problem(response, status)
    assert problem["field"] == field
    assert not Price.objects.exists()


def test_a_used_price_keeps_its_terms(api, billing_world):
    customer, price = billing_world
    api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}]},
        format="json",
    )

    response = api.patch(f"/api/v1/prices/price_{price.pk}", {"unit_amount": "1"}, format="json")

    assert_problem(response, 409, "price_in_use")  # a state conflict (issue 13: DomainError statuses)


def test_coupons_and_promotion_codes(api, product):
    coupon = api.post(
        "/api/v1/coupons",
        {"name": "Welcome", "percent_off": "10", "duration": "once", "applies_to": [f"prod_{product.pk}"]},
        format="json",
    )
    assert coupon.status_code == 201, coupon.content
    coupon_id = coupon.json()["id"]
    assert coupon.json()["applies_to"] == [f"prod_{product.pk}"]

    code = api.post("/api/v1/promotion_codes", {"coupon": coupon_id, "code": "BIENVENUE"}, format="json")

    assert code.status_code == 201 and code.json()["id"].startswith("promo_")
    duplicate = api.post("/api/v1/promotion_codes", {"coupon": coupon_id, "code": "BIENVENUE"}, format="json")
    assert_problem(duplicate, 422)
    assert api.get("/api/v1/promotion_codes", {"coupon": coupon_id}).json()["data"][0]["code"] == "BIENVENUE"


def test_coupon_needs_percent_or_amount_with_currency(api):
    response = api.post("/api/v1/coupons", {"name": "Broken", "amount_off": 500}, format="json")

    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)


def test_negative_amount_off_is_refused(api):
    response = api.post("/api/v1/coupons", {"name": "Neg", "amount_off": -5, "currency": "EUR"}, format="json")

    assert assert_problem(response, 400)["field"] == "amount_off"
