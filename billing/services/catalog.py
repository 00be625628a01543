"""Catalog rules: what a price costs for a quantity, and when a price is frozen."""

from __future__ import annotations

from functools import lru_cache

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from billing.cycles import CycleSpec
from billing.models import Price, Product
from billing.pricing import Tier, price_amount, tiers_from_json
from config.errors import DomainConflict

# Fields that define what a customer pays; frozen once the price is used.
PRICE_TERMS = (
    "product_id",
    "currency",
    "type",
    "scheme",
    "unit_amount",
    "tiers",
    "package_size",
    "package_rounding",
    "cycle",
    "usage_type",
    "meter_id",
    "tax_behavior",
)


class PriceInUse(DomainConflict, ValidationError):
    code = "price_in_use"


@lru_cache(maxsize=4096)
def _tiers(price_id: int, tiers_key: str) -> tuple[Tier, ...]:
    import json

    return tiers_from_json(json.loads(tiers_key))


def price_tiers(price: Price) -> tuple[Tier, ...]:
    import json

    return _tiers(price.pk or 0, json.dumps(price.tiers, sort_keys=True))


def price_amount_for(*, price: Price, quantity: int) -> int:
    """The amount in minor units of `quantity` units of `price` for one period."""
    if price.scheme in (Price.Scheme.TIERED_GRADUATED, Price.Scheme.TIERED_VOLUME):
        return price_amount(scheme=price.scheme, quantity=quantity, tiers=price_tiers(price))
    return price_amount(
        scheme=price.scheme,
        quantity=quantity,
        unit_amount=price.unit_amount,
        package_size=price.package_size,
        package_rounding=price.package_rounding,
    )


def price_cycle(price: Price) -> CycleSpec:
    return CycleSpec.from_dict(price.cycle)


def price_is_used(*, price: Price) -> bool:
    return price.subscription_items.exists() or price.invoice_lines.exists() or price.invoiceitem_set.exists()


def price_update(*, price: Price, changes: dict) -> Price:
    """Change a price; its terms are frozen once a subscription or invoice uses it.

    The refusal happens before any write, so it leaves the caller's transaction usable.
    """
    touched_terms = [name for name in changes if name in PRICE_TERMS or f"{name}_id" in PRICE_TERMS]
    if touched_terms and price_is_used(price=price):
        raise PriceInUse(
            _(
                "This price is used by subscriptions or invoices: "
                "archive it and create a new one instead of changing %(f)s."
            )
            % {"f": ", ".join(touched_terms)}
        )
    for name, value in changes.items():
        setattr(price, name, value)
    price.full_clean()
    with transaction.atomic(savepoint=False):
        price.save()
    return price


# Validation runs before the transaction opens: a refusal leaves the caller's transaction usable.


def product_create(*, data: dict) -> Product:
    product = Product(**data)
    product.full_clean()
    with transaction.atomic(savepoint=False):
        product.save()
    return product


def product_update(*, product: Product, changes: dict) -> Product:
    for name, value in changes.items():
        setattr(product, name, value)
    product.full_clean()
    with transaction.atomic(savepoint=False):
        product.save()
    return product


def price_create(*, data: dict) -> Price:
    """A new price; `clean()` checks the cycle, the scheme's amounts or tiers, and the meter."""
    price = Price(**data)
    price.full_clean()
    with transaction.atomic(savepoint=False):
        price.save()
    return price
