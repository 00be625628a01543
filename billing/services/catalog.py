"""Catalog rules: what a price costs for a quantity, and when a price is frozen."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Exists, Field, OuterRef, Q
from django.utils.translation import gettext as _

from billing.cycles import CycleSpec, CycleSpecError
from billing.models import InvoiceItem, Meter, Price, Product, SubscriptionItem
from config.errors import DomainConflict
from config.modes import default_livemode
from invoices.models import InvoiceLine

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
    # Issue 16 (usage): free units, percentage pricing and usage filters.
    "free_units",
    "percentage_rate",
    "fixed_amount",
    "free_amount",
    "per_transaction_min_amount",
    "per_transaction_max_amount",
    "usage_filter",
    # issue 16, cycles
    "billing_timing",
    "minimum_amount",
)


class PriceInUse(DomainConflict, ValidationError):
    code = "price_in_use"


def price_cycle(price: Price) -> CycleSpec:
    assert price.cycle is not None, "a one-off price has no cycle"
    return CycleSpec.from_dict(price.cycle)


def price_uses() -> list[Exists]:
    """What makes a price "in use": a subscription item, an invoice line or a pending item on it.

    The one price-in-use predicate: price_is_used asks it of one price, the console's
    "in use" column annotates a list with it, and billing/migrations/0012's trigger asks
    the database the same (tests/rules/test_freezes.py checks the two agree).
    """
    return [
        Exists(model.objects.filter(price=OuterRef("pk"))) for model in (SubscriptionItem, InvoiceLine, InvoiceItem)
    ]


def price_in_use_annotation() -> Q:
    """`queryset.annotate(used=price_in_use_annotation())`: the predicate for a list of prices."""
    predicate = Q()
    for use in price_uses():
        predicate |= Q(use)
    return predicate


def price_is_used(*, price: Price) -> bool:
    if price.pk is None:
        return False
    return Price.objects.filter(pk=price.pk).filter(price_in_use_annotation()).exists()


# The one price-in-use rule: the console, imports and the API all come through here
# (price_update), and on PostgreSQL billing/migrations/0012 refuses the same changes.
PRICE_TERM_FIELDS = tuple(name.removesuffix("_id") for name in PRICE_TERMS)


def _same_value(name: str, stored: Any, new: Any) -> bool:
    """Whether `new` says the same as the stored value (cycles and amounts compare by meaning)."""
    if isinstance(new, models.Model):
        new = new.pk
    if name == "cycle" and stored and new:
        try:
            return CycleSpec.from_dict(stored) == CycleSpec.from_dict(new)
        except (CycleSpecError, TypeError):
            return False
    if isinstance(stored, Decimal) and new is not None:
        try:
            return stored == Decimal(str(new))
        except ArithmeticError:
            return False
    return stored == new


def price_terms_changed(*, price: Price, changes: dict) -> list[str]:
    """The terms (field names) that `changes` would really change on the stored `price`."""
    changed = []
    for name, value in changes.items():
        field_name = name.removesuffix("_id")
        if field_name not in PRICE_TERM_FIELDS:
            continue
        # PRICE_TERM_FIELDS are concrete fields; get_field() is typed to return relations too.
        attname = cast(Field, Price._meta.get_field(field_name)).attname
        if not _same_value(field_name, getattr(price, attname), value):
            changed.append(field_name)
    return changed


def price_frozen_fields(*, price: Price) -> tuple[str, ...]:
    """The fields no write may change now (empty while the price is unused)."""
    return PRICE_TERM_FIELDS if price_is_used(price=price) else ()


def price_update_validate(*, price: Price, changes: dict) -> None:
    """Raise PriceInUse if `changes` alter the terms of a used price (`price` as stored)."""
    touched_terms = price_terms_changed(price=price, changes=changes)
    if touched_terms and price_is_used(price=price):
        raise PriceInUse(
            _(
                "This price is used by subscriptions or invoices: "
                "archive it and create a new one instead of changing %(f)s."
            )
            % {"f": ", ".join(touched_terms)}
        )


def price_update(*, price: Price, changes: dict) -> Price:
    """Change a price; its terms are frozen once a subscription or invoice uses it.

    Terms sent with their current value are no change (a console form or a spreadsheet
    sends every column). The refusal happens before any write, so it leaves the
    caller's transaction usable.
    """
    price_update_validate(price=price, changes=changes)
    changed_terms = set(price_terms_changed(price=price, changes=changes))
    for name, value in changes.items():
        field_name = name.removesuffix("_id")
        if field_name in PRICE_TERM_FIELDS and field_name not in changed_terms:
            continue  # the same term written differently ("every month" vs its JSON): keep the stored form
        setattr(price, name, value)
    price.full_clean()
    with transaction.atomic(savepoint=False):
        price.save()
    return price


# Validation runs before the transaction opens: a refusal leaves the caller's transaction usable.


def product_create(*, data: dict, livemode: bool | None = None) -> Product:
    """A new product, in `livemode` (default: the mode of the running request, else live)."""
    product = Product(**data)
    product.livemode = default_livemode() if livemode is None else livemode
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
    """A new price, in its product's mode; `clean()` checks the cycle, the scheme's amounts or
    tiers, and the meter."""
    price = Price(**data)
    if price.product_id is not None:
        price.livemode = price.product.livemode
    price.full_clean()
    with transaction.atomic(savepoint=False):
        price.save()
    return price


def meter_frozen_fields(*, meter: Meter) -> tuple[str, ...]:
    """Usage already reported under a key would be orphaned if the key or its maths changed."""
    return ("key", "aggregation") if meter.events.exists() or meter.prices.exists() else ()


def meter_update_validate(*, meter: Meter, changes: dict) -> None:
    touched = [
        name for name in meter_frozen_fields(meter=meter) if name in changes and changes[name] != getattr(meter, name)
    ]
    if touched:
        raise ValidationError(
            _("This meter has usage or prices: create a new meter instead of changing %(f)s.")
            % {"f": ", ".join(touched)}
        )
    if "dimensions" in changes and meter.pk is not None:
        kept = set(changes["dimensions"] or [])
        filtered_on = {
            key for usage_filter in meter.prices.values_list("usage_filter", flat=True) for key in usage_filter
        }
        dropped = sorted(filtered_on - kept)
        if dropped:
            raise ValidationError(
                {"dimensions": _("Prices filter on %(names)s: keep these dimensions.") % {"names": ", ".join(dropped)}}
            )


def meter_create(*, data: dict, livemode: bool | None = None) -> Meter:
    """A new meter, in `livemode` (default: the mode of the running request, else live)."""
    meter = Meter(**data)
    meter.livemode = default_livemode() if livemode is None else livemode
    meter.full_clean()
    with transaction.atomic(savepoint=False):
        meter.save()
    return meter


def meter_update(*, meter: Meter, changes: dict) -> Meter:
    meter_update_validate(meter=meter, changes=changes)
    for name, value in changes.items():
        setattr(meter, name, value)
    meter.full_clean()
    with transaction.atomic(savepoint=False):
        meter.save()
    return meter
