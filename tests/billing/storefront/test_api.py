"""Payment links and pricing tables over the API: shapes, refusals in problem+json, mode isolation."""

from __future__ import annotations

import pytest

from billing.storefront.models import PaymentLink
from billing.storefront.services import TableEntrySpec, pricing_table_create
from tests.api.conftest import assert_problem
from tests.billing.storefront.conftest import MONTH

pytestmark = pytest.mark.django_db


def _create(api, **body):
    return api.post("/api/v1/payment_links", body, format="json")


def test_create_list_retrieve_and_deactivate_a_payment_link(api, shop_brand, catalogue):
    seat = catalogue["seat"][0]

    created = _create(
        api,
        name="Team",
        line_items=[
            {"price": f"price_{seat.pk}", "quantity": 5, "adjustable_quantity": {"enabled": True, "maximum": 50}}
        ],
        trial_period_days=14,
        allow_promotion_codes=True,
    )

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["id"].startswith("plink_") and body["object"] == "payment_link"
    assert body["url"].endswith(f"/buy/{body['id']}/") and body["brand"] == f"brand_{shop_brand.pk}"
    assert body["line_items"] == [
        {
            "price": f"price_{seat.pk}",
            "quantity": 5,
            "adjustable_quantity": {"enabled": True, "minimum": 1, "maximum": 50},
        }
    ]
    assert body["usage_count"] == 0 and body["livemode"] is True and body["mode"] == "subscription"
    assert [row["id"] for row in api.get("/api/v1/payment_links").json()["data"]] == [body["id"]]
    assert api.get(f"/api/v1/payment_links/{body['id']}").json()["name"] == "Team"

    patched = api.patch(f"/api/v1/payment_links/{body['id']}", {"active": False}, format="json")

    assert patched.status_code == 200 and patched.json()["active"] is False
    assert PaymentLink.objects.get().active is False


def test_refusals_are_problem_json(api, shop_brand, catalogue, price_factory):
    flat = catalogue["flat"][0]
    sandbox_price = price_factory(livemode=False, product__livemode=False, cycle=MONTH)

    assert_problem(
        _create(api, name="x", mode="payment", line_items=[{"price": f"price_{flat.pk}"}]), 422, "recurring_in_payment"
    )
    unknown = _create(api, name="x", line_items=[{"price": f"price_{sandbox_price.pk}"}])
    assert unknown.status_code == 400 and "No such object" in unknown.content.decode()
    assert_problem(_create(api, name="x", line_items=[{"price": f"price_{flat.pk}"}], colour="red"), 400)
    assert_problem(_create(api, name="x", line_items=[]), 400)
    assert not PaymentLink.objects.exists()


def test_the_prices_of_a_link_cannot_be_changed(api, shop_brand, catalogue):
    link = _create(api, name="x", line_items=[{"price": f"price_{catalogue['flat'][0].pk}"}]).json()

    response = api.patch(f"/api/v1/payment_links/{link['id']}", {"line_items": []}, format="json")

    assert_problem(response, 400)


def test_another_modes_link_or_table_is_not_found(api, sandbox_api, shop_brand, catalogue):
    live = _create(api, name="live", line_items=[{"price": f"price_{catalogue['flat'][0].pk}"}]).json()
    table = pricing_table_create(
        brand=shop_brand, livemode=True, name="t", entries=[TableEntrySpec(monthly_price=catalogue["flat"][0])]
    )

    assert sandbox_api.get(f"/api/v1/payment_links/{live['id']}").status_code == 404
    assert sandbox_api.patch(f"/api/v1/payment_links/{live['id']}", {"active": False}, format="json").status_code == 404
    assert sandbox_api.get("/api/v1/payment_links").json()["data"] == []
    assert sandbox_api.get(f"/api/v1/pricing_tables/{table.public_id}").status_code == 404
    assert PaymentLink.objects.get().active is True


def test_pricing_tables_are_read_only(api, shop_brand, catalogue):
    flat = catalogue["flat"]
    table = pricing_table_create(
        brand=shop_brand,
        livemode=True,
        name="Plans",
        entries=[TableEntrySpec(monthly_price=flat[0], yearly_price=flat[1], highlighted=True)],
    )

    body = api.get(f"/api/v1/pricing_tables/{table.public_id}").json()

    assert body["object"] == "pricing_table" and body["embed_script"].endswith(f"/pricing/{table.public_id}/embed.js")
    assert body["entries"] == [
        {
            "product": f"prod_{flat[0].product_id}",
            "monthly_price": f"price_{flat[0].pk}",
            "yearly_price": f"price_{flat[1].pk}",
            "features": [],
            "highlighted": True,
        }
    ]
    assert api.post("/api/v1/pricing_tables", {}, format="json").status_code == 405
