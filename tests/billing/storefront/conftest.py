"""Fixtures of the storefront tests: a brand, a catalogue with every price model, and the API clients."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache

from billing.models import Price
from tests.api.conftest import api, make_key, sandbox_api  # noqa: F401

MONTH = {"kind": "interval", "unit": "month", "count": 1}
YEAR = {"kind": "interval", "unit": "year", "count": 1}
TIERS = [
    {"up_to": 10, "unit_amount": "900", "flat_amount": "0"},
    {"up_to": None, "unit_amount": "700", "flat_amount": "0"},
]


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Rate-limit counters live in the cache.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def shop_brand(brand_factory):
    return brand_factory(slug="nuage", name="Atelier Nuage", is_default=True, primary_colour="#2851a3")


@pytest.fixture
def catalogue(db, product_factory, price_factory):
    """Flat, per-seat, tiered and volume plans, each monthly and yearly, in live mode."""

    def plan(name: str, unit_label: str = "", **price_fields):
        product = product_factory(name=name, unit_label=unit_label)
        monthly = price_factory(product=product, cycle=MONTH, **price_fields)
        yearly_fields = dict(price_fields)
        if yearly_fields.get("unit_amount") is not None:
            yearly_fields["unit_amount"] = yearly_fields["unit_amount"] * 10
        yearly = price_factory(product=product, cycle=YEAR, **yearly_fields)
        return monthly, yearly

    return {
        "flat": plan("Starter", unit_amount=Decimal(1500)),
        "seat": plan("Team", unit_label="seat", unit_amount=Decimal(800)),
        "tiered": plan("Scale", unit_label="seat", scheme=Price.Scheme.TIERED_GRADUATED, unit_amount=None, tiers=TIERS),
        "volume": plan("Volume", unit_label="seat", scheme=Price.Scheme.TIERED_VOLUME, unit_amount=None, tiers=TIERS),
    }
