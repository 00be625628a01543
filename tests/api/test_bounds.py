"""Bounds on every amount and quantity (billing/limits.py), at every entry point, and the
customer's currency on invoice items and new subscriptions (issue 13, holes 4 and 8)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import tablib
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse

from billing.limits import MAX_AMOUNT, MAX_QUANTITY, MAX_TOTAL, AmountOutOfBounds
from billing.models import InvoiceItem, Price, Subscription
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db

INT64_MAX = 9_223_372_036_854_775_807


def _item(api, customer, **fields):
    with transaction.atomic():  # each request in its own savepoint, as its own transaction in production
        return api.post(
            "/api/v1/invoice_items",
            {"customer": f"cus_{customer.pk}", "description": "One-off", **fields},
            format="json",
        )


@pytest.mark.parametrize("amount", [INT64_MAX, -INT64_MAX, MAX_AMOUNT + 1, -(MAX_AMOUNT + 1), 2**64])
def test_an_invoice_item_beyond_the_line_bound_is_a_400(api, billing_world, amount):
    customer, _price = billing_world

    response = _item(api, customer, amount=amount)

    body = assert_problem(response, 400)
    assert body["field"] == "amount"
    assert not InvoiceItem.objects.exists()


@pytest.mark.parametrize("amount", [MAX_AMOUNT, -MAX_AMOUNT, 1])
def test_an_invoice_item_at_the_bound_is_accepted(api, billing_world, amount):
    customer, _price = billing_world

    response = _item(api, customer, amount=amount)

    assert response.status_code == 201, response.content
    assert response.json()["amount"] == amount


def test_the_item_service_refuses_out_of_bound_amounts_and_quantities_whatever_the_caller(billing_world):
    # defence in depth: a command or a task calling the service directly is refused too
    from billing.services.invoice_items import invoice_item_create

    customer, _price = billing_world
    with pytest.raises(AmountOutOfBounds), transaction.atomic():
        invoice_item_create(customer=customer, description="Overflow", amount=INT64_MAX)
    with pytest.raises(AmountOutOfBounds), transaction.atomic():
        invoice_item_create(customer=customer, description="Many", amount=100, quantity=MAX_QUANTITY + 1)
    assert not InvoiceItem.objects.exists()


@pytest.mark.parametrize("quantity", [MAX_QUANTITY + 1, INT64_MAX])
def test_a_subscription_quantity_beyond_the_bound_is_a_400(api, billing_world, quantity):
    customer, price = billing_world

    with transaction.atomic():
        response = api.post(
            "/api/v1/subscriptions",
            {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}", "quantity": quantity}]},
            format="json",
        )

    assert_problem(response, 400)
    assert not Subscription.objects.exists()


def test_the_subscription_service_refuses_a_quantity_beyond_the_bound(billing_world):
    from billing.services.subscriptions import ItemSpec, subscription_create

    customer, price = billing_world
    with pytest.raises(AmountOutOfBounds), transaction.atomic():
        subscription_create(customer=customer, items=[ItemSpec(price=price, quantity=MAX_QUANTITY + 1)])


@pytest.mark.parametrize(
    "fields",
    [
        {"unit_amount": str(MAX_AMOUNT + 1)},
        {"unit_amount": str(INT64_MAX)},
        {"unit_amount": "-1"},
        {"scheme": "package", "unit_amount": "100", "package_size": MAX_QUANTITY + 1},
        {
            "scheme": "tiered_graduated",
            "tiers": [
                {"up_to": 10, "unit_amount": "100", "flat_amount": MAX_AMOUNT + 1},
                {"up_to": None, "unit_amount": "1"},
            ],
        },
        {"scheme": "tiered_volume", "tiers": [{"up_to": None, "unit_amount": str(INT64_MAX)}]},
    ],
)
def test_a_price_beyond_the_bounds_is_refused(api, product, fields):
    body = {
        "product": f"prod_{product.pk}",
        "currency": "EUR",
        "cycle": {"kind": "interval", "unit": "month", "count": 1},
        "unit_amount": None,
        **fields,
    }

    with transaction.atomic():
        response = api.post("/api/v1/prices", body, format="json")

    assert 400 <= response.status_code < 500, response.content
    assert not Price.objects.exists()


def test_a_price_at_the_bound_is_accepted(api, product):
    body = {
        "product": f"prod_{product.pk}",
        "currency": "EUR",
        "cycle": {"kind": "interval", "unit": "month", "count": 1},
        "unit_amount": str(MAX_AMOUNT),
    }
    response = api.post("/api/v1/prices", body, format="json")
    assert response.status_code == 201, response.content


def test_a_coupon_amount_beyond_the_bound_is_a_400(api):
    response = api.post(
        "/api/v1/coupons", {"name": "Huge", "amount_off": MAX_AMOUNT + 1, "currency": "EUR"}, format="json"
    )
    assert_problem(response, 400)


def test_a_refund_beyond_the_total_bound_is_a_400(api):
    response = api.post(
        "/api/v1/refunds", {"payment": "pay_1", "amount": MAX_TOTAL + 1, "reason": "other"}, format="json"
    )
    body = assert_problem(response, 400)
    assert any(error["field"] == "amount" for error in body["errors"])


def test_the_console_refuses_an_invoice_item_beyond_the_bound(console, billing_world):
    customer, _price = billing_world

    response = console.post(
        reverse("admin:billing_invoiceitem_add"),
        {"customer": customer.pk, "description": "Overflow", "amount": "92233720368547758.07", "quantity": 1},
    )

    assert response.status_code == 200  # the form again, with the error
    assert "999999.99 EUR" in response.content.decode()  # the bound (MAX_AMOUNT), in major units
    assert not InvoiceItem.objects.exists()


def test_a_price_import_beyond_the_bound_imports_nothing(console, product_factory):
    product_factory(name="Nuage Pro")
    dataset = tablib.Dataset(
        headers=["product", "nickname", "lookup_key", "currency", "type", "scheme", "unit_amount", "cycle"]
    )
    dataset.append(["Nuage Pro", "Huge", "huge", "EUR", "recurring", "per_unit", str(MAX_AMOUNT + 1), "every month"])
    upload = SimpleUploadedFile("prices.csv", dataset.export("csv").encode(), content_type="text/csv")

    response = console.post("/admin/billing/price/import/", {"import_file": upload, "format": "0", "resource": "0"})

    assert response.status_code == 200
    assert 'name="import_file_name"' not in response.content.decode()  # no confirm button
    assert not Price.objects.exists()


# -- the customer's currency (hole 8) ---------------------------------------------------------------


def test_an_invoice_item_in_another_currency_than_the_customers_is_a_conflict(api, billing_world):
    customer, _price = billing_world  # billed in EUR

    response = _item(api, customer, amount=500, currency="USD")

    assert_problem(response, 409, "customer_currency")
    assert not InvoiceItem.objects.exists()


def test_a_subscription_in_another_currency_than_the_customers_is_a_conflict(api, billing_world, price_factory):
    customer, _price = billing_world
    dollars = price_factory(currency="USD", unit_amount=Decimal(2900))

    with transaction.atomic():
        response = api.post(
            "/api/v1/subscriptions",
            {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{dollars.pk}"}]},
            format="json",
        )

    assert_problem(response, 409, "customer_currency")
    assert not Subscription.objects.exists()


def test_a_usage_value_beyond_the_bound_is_refused_per_event(api, customer, meter):
    from billing.limits import MAX_USAGE_VALUE

    events = [
        {
            "id": "big",
            "customer": f"cus_{customer.pk}",
            "meter": meter.key,
            "timestamp": "2026-01-15T09:00:00Z",
            "value": MAX_USAGE_VALUE + 1,
        },
    ]

    response = api.post("/api/v1/usage_events", {"events": events}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 0
    assert response.json()["errors"][0]["code"] == "out_of_bounds"
