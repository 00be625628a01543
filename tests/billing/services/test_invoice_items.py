from __future__ import annotations

import pytest
from django.db import transaction

from billing.models import Price
from billing.services.invoice_items import InvoiceItemError, invoice_item_create
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.upcoming import upcoming_invoice
from config.events.models import DomainEvent
from invoices.models import Invoice
from invoices.selectors import customer_balance
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(make_customer, make_price):
    return subscription_create(customer=make_customer(), items=[ItemSpec(make_price(2900))], at=utc(2024, 4, 1))


def test_a_pending_item_waits_for_the_next_invoice(subscription):
    item = invoice_item_create(
        customer=subscription.customer,
        subscription=subscription,
        amount=4500,
        description="Data migration",
        at=utc(2024, 4, 10),
    )

    assert item.invoice is None and item.currency == "EUR"
    assert [line.draft.description for line in upcoming_invoice(subscription=subscription).lines] == [
        subscription.items.get().price.product.name,
        "Data migration",
    ]
    assert DomainEvent.objects.filter(type="invoiceitem.created", object_id=str(item.pk)).exists()


def test_an_item_invoiced_at_once(subscription):
    item = invoice_item_create(
        customer=subscription.customer, amount=4500, description="Rush fee", invoice_now=True, at=utc(2024, 4, 10)
    )

    invoice = item.invoice
    assert invoice.billing_reason == "manual" and invoice.number
    assert (invoice.total, invoice.finalized_at) == (5400, utc(2024, 4, 10))


def test_a_credit_invoiced_at_once_goes_to_the_balance(subscription):
    invoice_item_create(customer=subscription.customer, amount=-1000, description="Goodwill", invoice_now=True)

    assert customer_balance(customer_id=subscription.customer_id, currency="EUR") == 1200


def test_a_one_time_price_as_an_item(subscription, make_price):
    price = make_price(2500, type=Price.Type.ONE_TIME, nickname="Workshop")

    item = invoice_item_create(customer=subscription.customer, price=price, quantity=2, at=utc(2024, 4, 10))

    assert (item.amount, item.description, item.quantity) == (5000, "Workshop", 2)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"amount": 100, "currency": "USD", "on_subscription": True}, "currency"),
        ({"amount": 0}, "invalid_amount"),
        ({}, "amount_or_price"),
        ({"amount": 100, "description": "  "}, "description"),
        ({"amount": 100, "quantity": 0}, "invalid_quantity"),
        ({"recurring_price": True}, "price"),
    ],
)
def test_invalid_items_are_refused(kwargs, code, subscription, make_price):
    kwargs.setdefault("description", "Something")
    if kwargs.pop("on_subscription", False):
        kwargs["subscription"] = subscription
    if kwargs.pop("recurring_price", False):
        kwargs["price"] = make_price(100)

    with pytest.raises(InvoiceItemError) as error, transaction.atomic():
        invoice_item_create(customer=subscription.customer, at=utc(2024, 4, 10), **kwargs)

    assert error.value.code == code
    assert not Invoice.objects.filter(billing_reason="manual").exists()
