"""Currency codes in either case (returned upper-case) and Stripe's `"up_to": "inf"` for the last tier."""

from __future__ import annotations

import pytest

from billing.models import Coupon, Price
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db

MONTHLY = {"kind": "interval", "unit": "month", "count": 1}


@pytest.mark.parametrize("code", ["eur", "EUR", "Eur"])
def test_a_price_takes_the_currency_in_any_case_and_returns_it_upper_case(api, product, code):
    response = api.post(
        "/api/v1/prices",
        {"product": f"prod_{product.pk}", "currency": code, "unit_amount": 1500, "cycle": MONTHLY},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["currency"] == "EUR"
    assert Price.objects.get().currency == "EUR"


def test_coupons_customers_and_invoice_items_take_lower_case_codes(api, brand, customer):
    coupon = api.post("/api/v1/coupons", {"name": "Five off", "amount_off": 500, "currency": "eur"}, format="json")
    created = api.post(
        "/api/v1/customers",
        {"legal_name": "Acme", "email": "a@acme.example", "country": "FR", "currency": "usd"},
        format="json",
    )
    item = api.post(
        "/api/v1/invoice_items",
        {"customer": f"cus_{customer.pk}", "amount": 1000, "currency": "eur", "description": "Setup"},
        format="json",
    )

    assert coupon.status_code == 201 and coupon.json()["currency"] == "EUR"
    assert Coupon.objects.get().currency == "EUR"
    assert created.status_code == 201 and created.json()["currency"] == "USD"
    assert item.status_code == 201 and item.json()["currency"] == "EUR"


def test_list_filters_take_the_currency_in_any_case(api, price):
    assert [row["id"] for row in api.get("/api/v1/prices", {"currency": "eur"}).json()["data"]] == [f"price_{price.pk}"]


@pytest.mark.parametrize("code", ["xyz", "EU", "E1R"])
def test_a_currency_that_does_not_exist_is_a_field_error_naming_it(api, product, code):
    response = api.post(
        "/api/v1/prices",
        {"product": f"prod_{product.pk}", "currency": code, "unit_amount": 1500, "cycle": MONTHLY},
        format="json",
    )

    problem = assert_problem(response, 400)
    assert problem["field"] == "currency"
    assert problem["errors"][0]["code"] == "invalid_currency"
    assert f"'{code}'" in problem["detail"]


def _tiered(api, product, tiers, scheme="tiered_graduated"):
    return api.post(
        "/api/v1/prices",
        {"product": f"prod_{product.pk}", "currency": "eur", "scheme": scheme, "tiers": tiers, "cycle": MONTHLY},
        format="json",
    )


def test_up_to_inf_is_accepted_for_the_last_tier_and_returned_as_null(api, product):
    response = _tiered(
        api, product, [{"up_to": 5, "unit_amount": 500}, {"up_to": "inf", "unit_amount": 400, "flat_amount": 100}]
    )

    assert response.status_code == 201, response.content
    tiers = response.json()["tiers"]
    assert tiers[-1]["up_to"] is None and tiers[0]["up_to"] == 5
    assert Price.objects.get().tiers[-1]["up_to"] is None


def test_up_to_inf_before_the_last_tier_is_refused(api, product):
    response = _tiered(api, product, [{"up_to": "inf", "unit_amount": 500}, {"up_to": None, "unit_amount": 400}])

    problem = assert_problem(response, 422)
    assert problem["field"] == "tiers"
    assert not Price.objects.exists()


@pytest.mark.parametrize(
    "tiers",
    [
        [{"up_to": 10, "unit_amount": 500}, {"up_to": 5, "unit_amount": 400}, {"up_to": "inf", "unit_amount": 300}],
        [{"up_to": 10, "unit_amount": 500}, {"up_to": 10, "unit_amount": 400}, {"up_to": "inf", "unit_amount": 300}],
        [{"up_to": 10, "unit_amount": 500}, {"up_to": "lots", "unit_amount": 400}],
        [{"up_to": 10, "unit_amount": 500}],
    ],
    ids=["descending", "repeated", "not-a-number", "no-open-tier"],
)
def test_bad_tiers_get_a_clear_message_never_pythons(api, product, tiers):
    response = _tiered(api, product, tiers)

    problem = assert_problem(response, 422)
    assert problem["field"] == "tiers"
    assert "invalid literal" not in problem["detail"] and "int()" not in problem["detail"]
    assert not Price.objects.exists()


def test_tier_messages_follow_the_request_language(api, product):
    tiers = [{"up_to": 10, "unit_amount": 500}, {"up_to": 5, "unit_amount": 400}, {"up_to": "inf", "unit_amount": 1}]

    english = assert_problem(_tiered(api, product, tiers), 422)

    assert english["detail"].startswith("Tiers must ascend strictly")
