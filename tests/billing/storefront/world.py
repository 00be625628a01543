"""A pricing table and a payment link with their own prices (console pages, demo-like)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from billing.models import Price, Product
from billing.storefront.services import LinkItemSpec, TableEntrySpec, payment_link_create, pricing_table_create
from invoices.models import Brand

MONTH = {"kind": "interval", "unit": "month", "count": 1}
YEAR = {"kind": "interval", "unit": "year", "count": 1}


def storefront_world(*, price: Any = None, livemode: bool = True) -> dict[str, Any]:
    brand = Brand.objects.filter(is_default=True).first() or Brand.objects.first()
    product = Product.objects.create(name="Storefront Pro", unit_label="seat", livemode=livemode)
    monthly = Price.objects.create(
        product=product, currency="EUR", unit_amount=Decimal(1900), cycle=MONTH, livemode=livemode
    )
    yearly = Price.objects.create(
        product=product, currency="EUR", unit_amount=Decimal(19000), cycle=YEAR, livemode=livemode
    )
    table = pricing_table_create(
        brand=brand,
        livemode=livemode,
        name="Public plans",
        entries=[TableEntrySpec(monthly_price=monthly, yearly_price=yearly, features=("Email support",))],
        trial_period_days=14,
    )
    link = payment_link_create(
        brand=brand,
        livemode=livemode,
        name="Pro by the seat",
        mode="subscription",
        items=[LinkItemSpec(price=monthly, quantity=3, adjustable_minimum=1, adjustable_maximum=20)],
    )
    return {"table": table, "link": link, "monthly": monthly, "yearly": yearly}
