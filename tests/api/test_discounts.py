"""Discounts over the API (issue 16): several on create, add/remove on a subscription, a customer's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import CustomerDiscount
from invoices.models import Invoice
from tests.api.conftest import assert_problem
from tests.factories import CouponFactory

pytestmark = pytest.mark.django_db


def _create(api, customer, price, **extra):
    return api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}], "trial_days": 0, **extra},
        format="json",
    )


def test_create_with_two_discounts_applies_them_in_order(api, billing_world):
    # given 2900 with 10 % off then 500 off: 2900 - 290 = 2610, - 500 = 2110
    customer, price = billing_world
    ten, five = CouponFactory(percent_off=Decimal(10)), CouponFactory(percent_off=None, amount_off=500, currency="EUR")
    # when
    response = _create(
        api,
        customer,
        price,
        discounts=[{"coupon": f"coupon_{ten.pk}"}, {"coupon": f"coupon_{five.pk}"}],
        proration_credit_basis="flexible",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert [d["coupon"] for d in body["discounts"]] == [f"coupon_{ten.pk}", f"coupon_{five.pk}"]
    assert body["discounts"][0]["id"].startswith("di_") and body["proration_credit_basis"] == "flexible"
    invoice = Invoice.objects.get(subscription_id=int(body["id"][4:]))
    assert invoice.subtotal - invoice.discount_total == 2110


def test_create_refuses_a_discount_with_both_or_neither(api, billing_world):
    customer, price = billing_world
    coupon = CouponFactory()
    both = _create(api, customer, price, discounts=[{"coupon": f"coupon_{coupon.pk}", "promotion_code": "X"}])
    errors = assert_problem(both, 400)["errors"]
    assert {"field": "discounts[0].coupon", "code": "coupon_or_code"}.items() <= errors[0].items()
    unknown = _create(api, customer, price, discounts=[{"coupon": f"coupon_{coupon.pk}", "percent": 5}])
    errors = assert_problem(unknown, 400)["errors"]
    assert {"field": "discounts[0].percent", "code": "unknown_parameter"}.items() <= errors[0].items()


def test_create_refuses_the_same_coupon_twice(api, billing_world):
    customer, price = billing_world
    coupon = CouponFactory()
    response = _create(api, customer, price, discounts=[{"coupon": f"coupon_{coupon.pk}"}] * 2)
    assert_problem(response, 422, "duplicate_discount")


def test_add_and_remove_a_discount_on_a_subscription(api, billing_world):
    customer, price = billing_world
    subscription = _create(api, customer, price).json()
    coupon = CouponFactory()
    # when one is added
    added = api.post(
        f"/api/v1/subscriptions/{subscription['id']}/discounts", {"coupon": f"coupon_{coupon.pk}"}, format="json"
    )
    # then it runs from the next invoice
    assert added.status_code == 201, added.content
    discount = added.json()
    assert discount["object"] == "discount" and discount["coupon"] == f"coupon_{coupon.pk}"
    assert discount["periods_applied"] == 0
    shown = api.get(f"/api/v1/subscriptions/{subscription['id']}").json()
    assert [d["id"] for d in shown["discounts"]] == [discount["id"]]
    # when it is removed
    removed = api.delete(f"/api/v1/subscriptions/{subscription['id']}/discounts/{discount['id']}")
    assert removed.status_code == 200, removed.content
    assert removed.json()["discounts"] == []
    # and removing it again is refused
    again = api.delete(f"/api/v1/subscriptions/{subscription['id']}/discounts/{discount['id']}")
    assert_problem(again, 422, "no_discount")


def test_another_subscriptions_discount_is_not_found(api, billing_world, customer_factory):
    customer, price = billing_world
    first = _create(api, customer, price).json()
    second = _create(api, customer, price).json()
    coupon = CouponFactory()
    discount = api.post(
        f"/api/v1/subscriptions/{first['id']}/discounts", {"coupon": f"coupon_{coupon.pk}"}, format="json"
    ).json()
    response = api.delete(f"/api/v1/subscriptions/{second['id']}/discounts/{discount['id']}")
    assert_problem(response, 404)
    unknown = api.post(f"/api/v1/subscriptions/{first['id']}/discounts", {"coupon": "coupon_999999"}, format="json")
    assert_problem(unknown, 400)


def test_a_customer_discount_applies_when_the_subscription_has_none(api, billing_world):
    customer, price = billing_world
    coupon = CouponFactory(percent_off=Decimal(50))
    # when the customer gets 50 % off
    response = api.post(
        f"/api/v1/customers/cus_{customer.pk}/discounts", {"coupon": f"coupon_{coupon.pk}"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["id"].startswith("cdi_")
    # then a new subscription without its own discount is billed half
    subscription = _create(api, customer, price).json()
    invoice = Invoice.objects.get(subscription_id=int(subscription["id"][4:]))
    assert invoice.subtotal == 2900 and invoice.discount_total == 1450
    listed = api.get(f"/api/v1/customers/cus_{customer.pk}/discounts").json()["data"]
    assert [row["coupon"] for row in listed] == [f"coupon_{coupon.pk}"]
    # and removing it ends it
    assert api.delete(f"/api/v1/customers/cus_{customer.pk}/discounts/current").status_code == 204
    assert not CustomerDiscount.objects.filter(end__isnull=True).exists()
    assert_problem(api.delete(f"/api/v1/customers/cus_{customer.pk}/discounts/current"), 422, "no_discount")


def test_another_modes_customer_is_not_found(sandbox_api, billing_world):
    customer, _price = billing_world  # a live customer
    coupon = CouponFactory()
    response = sandbox_api.post(
        f"/api/v1/customers/cus_{customer.pk}/discounts", {"coupon": f"coupon_{coupon.pk}"}, format="json"
    )
    assert_problem(response, 404)


def test_the_change_endpoint_sets_the_credit_basis(api, billing_world, price_factory):
    customer, price = billing_world
    subscription = _create(api, customer, price).json()
    smaller = price_factory(unit_amount=900, product=price.product)
    body = {"items": [{"price": f"price_{smaller.pk}"}], "proration_credit_basis": "flexible"}
    changed = api.post(f"/api/v1/subscriptions/{subscription['id']}/change", body, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["proration_credit_basis"] == "flexible"
    wrong = api.post(
        f"/api/v1/subscriptions/{subscription['id']}/change",
        {"items": [{"price": f"price_{price.pk}"}], "proration_credit_basis": "generous"},
        format="json",
    )
    assert_problem(wrong, 400)
