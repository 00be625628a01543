"""Fixtures of the checkout tests: a French seller brand, VAT rates, a monthly and a one-time price."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.checkout.services import checkout_session_create
from billing.models import Price


@pytest.fixture
def seller(db, brand_factory, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    tax_rate_factory(country="BE", name="BTW", percentage=Decimal("21"))
    return brand_factory(slug="atelier-nuage", is_default=True)


@pytest.fixture
def monthly(db, price_factory, product_factory):
    return price_factory(product=product_factory(name="Pro"), unit_amount=Decimal(2900), nickname="Pro monthly")


@pytest.fixture
def one_time(db, price_factory, product_factory):
    return price_factory(
        product=product_factory(name="Onboarding"), type=Price.Type.ONE_TIME, cycle=None, unit_amount=Decimal(15000)
    )


@pytest.fixture
def make_session(seller, monthly):
    def make(**overrides):
        args = {
            "brand": seller,
            "livemode": True,
            "mode": "subscription",
            "line_items": [(monthly, 1)],
            "success_url": "https://shop.example/thanks?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://shop.example/pricing",
        }
        args.update(overrides)
        return checkout_session_create(**args)

    return make


FR_BUSINESS = {
    "is_business": True,
    "legal_name": "Lune Rousse SARL",
    "email": "compta@lune-rousse.example",
    "country": "FR",
    "tax_id": "FR40303265045",
    "address_line1": "3 rue des Arts",
    "postal_code": "69001",
    "city": "Lyon",
}
BE_BUSINESS = {
    "is_business": True,
    "legal_name": "Brasserie Zenne BV",
    "email": "finance@zenne.example",
    "country": "BE",
    "tax_id": "BE0403019261",
    "address_line1": "Rue Haute 1",
    "postal_code": "1000",
    "city": "Bruxelles",
}
FR_PERSON = {
    "is_business": False,
    "legal_name": "Camille Martin",
    "email": "camille@martin.example",
    "country": "FR",
}
