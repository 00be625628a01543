"""Fixtures for the billing services: one brand, French VAT, customers in Paris."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.models import Price


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


MONTHLY = {"kind": "interval", "unit": "month", "count": 1}
YEARLY = {"kind": "interval", "unit": "year", "count": 1}


@pytest.fixture
def billing_brand(db, brand_factory, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    return brand_factory(slug="atelier", is_default=True)


@pytest.fixture
def make_customer(billing_brand, customer_factory):
    def make(**fields):
        fields.setdefault("brand", billing_brand)
        fields.setdefault("timezone", "UTC")
        return customer_factory(**fields)

    return make


@pytest.fixture
def make_price(db, product_factory):
    def make(amount: int | str = 2900, *, cycle=MONTHLY, product=None, **fields) -> Price:
        fields.setdefault("currency", "EUR")
        if fields.get("type") == Price.Type.ONE_TIME:
            cycle = None
        return Price.objects.create(
            product=product or product_factory(),
            unit_amount=Decimal(amount) if amount is not None else None,
            cycle=cycle,
            **fields,
        )

    return make


@pytest.fixture
def make_metered_price(make_price, meter_factory):
    def make(unit_amount: str = "0.5", *, aggregation="sum", meter=None, **fields) -> Price:
        meter = meter or meter_factory(aggregation=aggregation)
        return make_price(unit_amount, usage_type=Price.UsageType.METERED, meter=meter, **fields)

    return make
