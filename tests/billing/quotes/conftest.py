"""Fixtures for the quotes: a French brand (DEV- series), French VAT, prices in euros."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import Coupon, Price
from billing.quotes.services import QuoteLineInput, quote_create, quote_finalize

MONTHLY = {"kind": "interval", "unit": "month", "count": 1}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def quote_brand(db, brand_factory, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    tax_rate_factory(country="BE", percentage=Decimal("21"))
    return brand_factory(slug="atelier-devis", is_default=True, default_language="fr")


@pytest.fixture
def make_customer(quote_brand, customer_factory):
    def make(**fields):
        fields.setdefault("brand", quote_brand)
        fields.setdefault("timezone", "Europe/Paris")
        return customer_factory(**fields)

    return make


@pytest.fixture
def make_price(db, product_factory):
    def make(amount: int = 2900, *, cycle=MONTHLY, **fields) -> Price:
        fields.setdefault("currency", "EUR")
        if fields.get("type") == Price.Type.ONE_TIME:
            cycle = None
        return Price.objects.create(
            product=fields.pop("product", None) or product_factory(), unit_amount=Decimal(amount), cycle=cycle, **fields
        )

    return make


@pytest.fixture
def make_coupon(db):
    def make(**fields) -> Coupon:
        fields.setdefault("name", "Bienvenue")
        fields.setdefault("duration", "forever")
        if "amount_off" not in fields:
            fields.setdefault("percent_off", Decimal(10))
        return Coupon.objects.create(**fields)

    return make


@pytest.fixture
def open_quote(make_customer, make_price):
    """An issued (open) quote: 2 seats of a 29 € monthly plan, valid 30 days."""

    def make(customer=None, *, lines=None, finalize=True, **fields):
        customer = customer or make_customer()
        lines = lines or [QuoteLineInput(price=make_price(2900), quantity=2)]
        quote = quote_create(customer=customer, lines=lines, **fields)
        return quote_finalize(quote=quote) if finalize else quote

    return make


def later(days: int) -> timedelta:
    return timedelta(days=days)
