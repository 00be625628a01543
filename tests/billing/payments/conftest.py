"""Fixtures for payments: a customer on a 29.00 EUR monthly plan (34.80 with VAT), sandbox cards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from billing.models import Subscription
from billing.services.dunning import invoices_collect
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_create
from tests.billing.services.conftest import billing_brand, make_customer, make_price  # noqa: F401

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)

VISA_OK = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
REQUIRES_AUTH = "4000002500003155"


def card(number: str) -> dict:
    return {"card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}}


@pytest.fixture
def now():
    """Wall-clock time for customers without a test clock; `now.move_to(...)` moves it."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def subscribe(make_customer, make_price, now):  # noqa: F811 (fixtures)
    """subscribe(card_number) -> (subscription, first invoice), not charged yet."""

    def make(number: str | None = VISA_OK, *, customer=None, **options):
        customer = customer or make_customer()
        if number is not None:
            payment_method_attach(customer=customer, source=card(number))
        price = make_price(2900)
        subscription = subscription_create(customer=customer, items=[ItemSpec(price)], at=T0, **options)
        return subscription, subscription.invoices.get()

    return make


@pytest.fixture
def charged(subscribe):
    """charged(card_number) -> (subscription, invoice) after the first collection."""

    def make(number: str | None = VISA_OK, **options):
        subscription, invoice = subscribe(number, **options)
        invoices_collect(invoice_ids=[invoice.pk])
        invoice.refresh_from_db()
        return Subscription.objects.get(pk=subscription.pk), invoice

    return make
