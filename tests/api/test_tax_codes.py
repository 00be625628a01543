"""Issue 16 items 11 and 13: tax codes and tax rates over the API; tax_code on products and prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.api.conftest import assert_problem
from tests.factories import TaxRateFactory
from tests.tax_codes import seeded_tax_codes

pytestmark = pytest.mark.django_db


def test_tax_codes_list_with_their_rates_per_country(api):
    # given the seeded codes
    codes = seeded_tax_codes()

    # when an integrator lists them
    response = api.get("/api/v1/tax_codes", {"limit": 100})

    # then each shows its category, VATEX code and rates
    assert response.status_code == 200, response.content
    by_code = {row["code"]: row for row in response.json()["data"]}
    reduced = by_code["reduced"]
    assert reduced["id"] == f"txcd_{codes['reduced'].pk}" and reduced["object"] == "tax_code"
    assert {"country": "FR", "percentage": "5.500"} in reduced["rates"]
    assert {"country": "DE", "percentage": "7.000"} in reduced["rates"]
    assert by_code["exempt-training"]["exemption_reason_code"] == "VATEX-EU-132-1I"
    assert by_code["super-reduced"]["category"] == "super_reduced"


def test_a_tax_code_is_retrieved_by_id_and_a_wrong_id_is_a_404(api):
    code = seeded_tax_codes()["super-reduced"]

    assert {"country": "FR", "percentage": "2.100"} in api.get(f"/api/v1/tax_codes/txcd_{code.pk}").json()["rates"]
    assert_problem(api.get("/api/v1/tax_codes/txcd_999999"), 404)
    assert_problem(api.get(f"/api/v1/tax_codes/prod_{code.pk}"), 404)


def test_tax_codes_and_rates_are_global_both_modes_see_the_same(api, sandbox_api):
    # given reference data (not per mode)
    seeded_tax_codes()
    TaxRateFactory(country="FR", percentage=Decimal("20"))

    # then a live key and a sandbox key list the same codes and rates
    for route in ("tax_codes", "tax_rates"):
        live = {row["id"] for row in api.get(f"/api/v1/{route}", {"limit": 100}).json()["data"]}
        test = {row["id"] for row in sandbox_api.get(f"/api/v1/{route}", {"limit": 100}).json()["data"]}
        assert live and live == test


def test_tax_rates_list(api):
    rate = TaxRateFactory(country="FR", percentage=Decimal("20"))

    rows = api.get("/api/v1/tax_rates").json()["data"]

    assert {
        "id": f"txr_{rate.pk}",
        "object": "tax_rate",
        "country": "FR",
        "name": "TVA",
        "percentage": "20.000",
        "is_standard": True,
        "active": True,
    } in rows


def test_products_and_prices_take_a_tax_code_by_code_or_id(api):
    codes = seeded_tax_codes()

    # when a product is created with a code and its price with an id
    product = api.post("/api/v1/products", {"name": "Livre", "tax_code": "reduced"}, format="json")
    assert product.status_code == 201, product.content
    price = api.post(
        "/api/v1/prices",
        {
            "product": product.json()["id"],
            "currency": "EUR",
            "unit_amount": "1000",
            "type": "one_time",
            "tax_code": f"txcd_{codes['standard'].pk}",
        },
        format="json",
    )
    assert price.status_code == 201, price.content

    # then both show the code's id, and a PATCH can clear the product's
    assert product.json()["tax_code"] == f"txcd_{codes['reduced'].pk}"
    assert price.json()["tax_code"] == f"txcd_{codes['standard'].pk}"
    cleared = api.patch(f"/api/v1/products/{product.json()['id']}", {"tax_code": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["tax_code"] is None


@pytest.mark.parametrize("value", ["no-such-code", "txcd_999999", "txr_1"])
def test_an_unknown_tax_code_is_a_field_error(api, value):
    seeded_tax_codes()

    response = api.post("/api/v1/products", {"name": "Livre", "tax_code": value}, format="json")

    assert assert_problem(response, 400)["field"] == "tax_code"
