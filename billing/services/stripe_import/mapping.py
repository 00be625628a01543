"""Stripe object -> the data Tarif's services take, or the reason it cannot be mapped.

Pure functions over Stripe's documented JSON shapes (both the current one, where a
subscription's period lives on its items, and the older one, on the subscription), so the
dry run and the real run decide the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from config.money import CurrencyError, validate_currency
from config.types import JsonDict

Json = Mapping[str, Any]
SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")
INTERVALS = ("day", "week", "month", "year")
ADOPTED_STATUSES = ("active", "trialing", "past_due")
ENDED_STATUSES = ("canceled", "incomplete_expired")


@dataclass(frozen=True, slots=True)
class Unmappable(Exception):
    """Why one Stripe object is not recreated (listed in the run's report)."""

    code: str
    reason: str

    def __str__(self) -> str:
        return self.reason


def ts(value: str | int | float | None) -> datetime | None:
    return None if value is None or value == "" else datetime.fromtimestamp(int(value), tz=UTC)


def stripe_id(value: object) -> str:
    """An expandable field: an id, or an expanded object with an id."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def key_mode(api_key: str) -> bool:
    """Live (True) or test (False) from the key's prefix; anything else is refused."""
    if api_key.startswith(("sk_live_", "rk_live_")):
        return True
    if api_key.startswith(("sk_test_", "rk_test_")):
        return False
    raise Unmappable("api_key", _("A Stripe secret key starts with sk_live_, sk_test_, rk_live_ or rk_test_."))


def key_hint(api_key: str) -> str:
    """What may be shown of a key: its mode prefix and last 4 characters."""
    prefix = api_key[:8] if api_key[:3] in ("sk_", "rk_") else ""
    return f"{prefix}…{api_key[-4:]}"


def product_data(product: Json) -> JsonDict:
    return {
        "name": str(product.get("name") or product["id"])[:200],
        "description": str(product.get("description") or ""),
        "unit_label": str(product.get("unit_label") or "")[:40],
        "active": bool(product.get("active", True)),
        "metadata": {**(product.get("metadata") or {}), "stripe_id": product["id"]},
    }


def _amount(unit_amount: Any, unit_amount_decimal: Any) -> Decimal | None:
    if unit_amount_decimal not in (None, ""):
        return Decimal(str(unit_amount_decimal))
    return None if unit_amount is None else Decimal(int(unit_amount))


def price_data(price: Json) -> JsonDict:
    """Price fields (without the product), or Unmappable."""
    if price.get("transform_quantity"):
        raise Unmappable(
            "transform_quantity", _("Prices with transform_quantity (units rounded into packages) are not mapped.")
        )
    if price.get("custom_unit_amount"):
        raise Unmappable("custom_unit_amount", _("Customer-chosen amounts (custom_unit_amount) are not mapped."))
    if price.get("currency_options"):
        raise Unmappable("currency_options", _("Prices in several currencies (currency_options) are not mapped."))
    currency = str(price.get("currency") or "").upper()
    if not currency_supported(currency):
        raise Unmappable("currency", _("The currency %(currency)s is not supported.") % {"currency": currency})
    recurring = price.get("recurring") or None
    data: JsonDict = {
        "nickname": str(price.get("nickname") or "")[:200],
        "currency": currency,
        "active": bool(price.get("active", True)),
        "tax_behavior": "inclusive" if price.get("tax_behavior") == "inclusive" else "exclusive",
        "metadata": {**(price.get("metadata") or {}), "stripe_id": price["id"]},
    }
    lookup_key = str(price.get("lookup_key") or "")
    if lookup_key and SLUG.match(lookup_key) and len(lookup_key) <= 100:
        data["lookup_key"] = lookup_key
    elif lookup_key:
        data["metadata"]["stripe_lookup_key"] = lookup_key
    if recurring:
        if recurring.get("usage_type") == "metered":
            raise Unmappable(
                "metered", _("Metered prices need a Tarif meter for their usage: create it, then the price.")
            )
        interval = recurring.get("interval")
        if interval not in INTERVALS:
            raise Unmappable("interval", _("Unknown interval %(interval)s.") % {"interval": interval})
        data["type"] = "recurring"
        data["cycle"] = {"kind": "interval", "unit": interval, "count": int(recurring.get("interval_count") or 1)}
        data["usage_type"] = "licensed"
    else:
        data["type"] = "one_time"
        data["cycle"] = None
    if price.get("billing_scheme") == "tiered":
        mode = price.get("tiers_mode")
        if mode not in ("graduated", "volume"):
            raise Unmappable("tiers_mode", _("Unknown tiers mode %(mode)s.") % {"mode": mode})
        tiers = price.get("tiers")
        if not tiers:
            raise Unmappable("tiers", _("A tiered price whose tiers were not returned (expand tiers)."))
        data["scheme"] = "tiered_graduated" if mode == "graduated" else "tiered_volume"
        data["tiers"] = [
            {
                "up_to": None if tier.get("up_to") in (None, "inf") else int(tier["up_to"]),
                "unit_amount": str(_amount(tier.get("unit_amount"), tier.get("unit_amount_decimal")) or 0),
                "flat_amount": int(
                    _amount(tier.get("flat_amount"), tier.get("flat_amount_decimal")) or 0
                ),  # Stripe's flat amounts are whole minor units
            }
            for tier in tiers
        ]
        data["unit_amount"] = None
    else:
        amount = _amount(price.get("unit_amount"), price.get("unit_amount_decimal"))
        if amount is None:
            raise Unmappable("unit_amount", _("A per-unit price without an amount."))
        data["scheme"] = "per_unit"
        data["unit_amount"] = amount
    return data


def coupon_data(coupon: Json) -> JsonDict:
    if coupon.get("currency_options"):
        raise Unmappable("currency_options", _("Coupons in several currencies (currency_options) are not mapped."))
    data: JsonDict = {
        "name": str(coupon.get("name") or coupon["id"])[:200],
        "duration": coupon.get("duration") or "once",
        "duration_in_periods": coupon.get("duration_in_months") if coupon.get("duration") == "repeating" else None,
        "max_redemptions": coupon.get("max_redemptions"),
        "redeem_by": ts(coupon.get("redeem_by")),
    }
    if coupon.get("percent_off") is not None:
        data["percent_off"] = Decimal(str(coupon["percent_off"])).quantize(Decimal("0.01"))
    else:
        data["amount_off"] = int(coupon["amount_off"])
        data["currency"] = str(coupon.get("currency") or "").upper()
    return data


def coupon_product_ids(coupon: Json) -> list[str]:
    return list((coupon.get("applies_to") or {}).get("products") or [])


def promotion_code_data(promotion: Json) -> JsonDict:
    restrictions = promotion.get("restrictions") or {}
    if restrictions.get("minimum_amount"):
        raise Unmappable("minimum_amount", _("Promotion codes with a minimum order amount are not mapped."))
    return {
        "code": str(promotion["code"])[:50],
        "active": bool(promotion.get("active", True)),
        "max_redemptions": promotion.get("max_redemptions"),
        "expires_at": ts(promotion.get("expires_at")),
        "first_time_only": bool(restrictions.get("first_time_transaction")),
    }


def promotion_coupon_id(promotion: Json) -> str:
    """The coupon of a promotion code (`coupon` before API 2025-09-30, `promotion.coupon` after)."""
    if promotion.get("coupon"):
        return stripe_id(promotion["coupon"])
    return stripe_id((promotion.get("promotion") or {}).get("coupon"))


LANGUAGES = ("fr", "en")


def currency_supported(currency: str) -> bool:
    try:
        return validate_currency(currency) == currency
    except CurrencyError:
        return False


def customer_data(customer: Json, *, tax_ids: Sequence[Json], default_country: str, default_currency: str) -> dict:
    address = customer.get("address") or {}
    vat = next((tax_id for tax_id in tax_ids if tax_id.get("type") == "eu_vat"), None)
    country = str(address.get("country") or (vat or {}).get("country") or default_country).upper()
    language = next(
        (locale[:2] for locale in customer.get("preferred_locales") or [] if locale[:2].lower() in LANGUAGES),
        "en",
    ).lower()
    email = str(customer.get("email") or "")
    if not email:
        raise Unmappable("email", _("Tarif bills customers by email; this customer has none."))
    other_ids = {tax_id["type"]: tax_id["value"] for tax_id in tax_ids if tax_id is not vat}
    metadata = {**(customer.get("metadata") or {}), "stripe_id": customer["id"]}
    if other_ids:
        metadata["stripe_tax_ids"] = other_ids
    return {
        "legal_name": str(customer.get("name") or customer.get("description") or email)[:200],
        "email": email,
        "country": country,
        "preferred_language": language,
        "currency": str(customer.get("currency") or default_currency).upper(),
        # Stripe counts periods in UTC: so does the imported customer, so renewals keep Stripe's dates.
        "timezone": "UTC",
        "is_business": vat is not None or customer.get("tax_exempt") == "reverse",
        "tax_id": str(vat["value"]) if vat else "",
        "address_line1": str(address.get("line1") or "")[:200],
        "address_line2": str(address.get("line2") or "")[:200],
        "postal_code": str(address.get("postal_code") or "")[:20],
        "city": str(address.get("city") or "")[:100],
        "region": str(address.get("state") or "")[:100],
        "metadata": metadata,
    }


@dataclass(frozen=True, slots=True)
class SubscriptionShape:
    """What the importer reads of a Stripe subscription."""

    customer: str
    status: str
    items: tuple[tuple[str, int], ...]  # (price id, quantity)
    currency: str
    current_period_start: datetime
    current_period_end: datetime
    billing_cycle_anchor: datetime
    trial_start: datetime | None
    trial_end: datetime | None
    coupon: str
    discount_start: datetime | None
    collection_method: str
    days_until_due: int | None
    cancel_at_period_end: bool
    metadata: dict


def _discounts(subscription: Json) -> list[Json]:
    discounts = [d for d in subscription.get("discounts") or [] if d]
    if not discounts and subscription.get("discount"):
        discounts = [subscription["discount"]]
    if any(not isinstance(d, Mapping) for d in discounts):
        raise Unmappable("discounts", _("The subscription's discounts were not expanded."))
    return discounts


def subscription_shape(subscription: Json) -> SubscriptionShape:
    """The subscription as Tarif adopts it, or Unmappable (schedules, pending updates...)."""
    status = subscription.get("status")
    if status not in ADOPTED_STATUSES:
        raise Unmappable("status", _("Subscriptions with status %(status)s are not imported.") % {"status": status})
    if subscription.get("schedule"):
        raise Unmappable("subscription_schedule", _("Subscriptions driven by a subscription schedule are not mapped."))
    if subscription.get("pending_update"):
        raise Unmappable("pending_update", _("Subscriptions with a pending update are not mapped."))
    if subscription.get("cancel_at") and not subscription.get("cancel_at_period_end"):
        raise Unmappable("cancel_at", _("Cancellations at a chosen date (cancel_at) are not mapped."))
    if subscription.get("pause_collection"):
        raise Unmappable("pause_collection", _("Subscriptions with paused collection are not mapped."))
    items = (subscription.get("items") or {}).get("data") or []
    if not items:
        raise Unmappable("items", _("A subscription without items."))
    discounts = _discounts(subscription)
    if len(discounts) > 1:
        raise Unmappable("multiple_discounts", _("Subscriptions with several discounts are not mapped."))
    first = items[0]
    start = subscription.get("current_period_start") or first.get("current_period_start")
    end = subscription.get("current_period_end") or first.get("current_period_end")
    if any(
        (item.get("current_period_end") or end) != end or (item.get("current_period_start") or start) != start
        for item in items
    ):
        raise Unmappable("mixed_periods", _("Items on different billing periods are not mapped."))
    currency = str(subscription.get("currency") or (first.get("price") or {}).get("currency") or "").upper()
    discount = discounts[0] if discounts else None
    return SubscriptionShape(
        customer=stripe_id(subscription.get("customer")),
        status=str(status),
        items=tuple((stripe_id(item.get("price")), int(item.get("quantity") or 1)) for item in items),
        currency=currency,
        current_period_start=ts(start),  # type: ignore[arg-type]
        current_period_end=ts(end),  # type: ignore[arg-type]
        billing_cycle_anchor=ts(subscription.get("billing_cycle_anchor") or start),  # type: ignore[arg-type]
        trial_start=ts(subscription.get("trial_start")) if status == "trialing" else None,
        trial_end=ts(subscription.get("trial_end")) if status == "trialing" else None,
        coupon=stripe_id(discount.get("coupon") or (discount.get("source") or {}).get("coupon")) if discount else "",
        discount_start=ts(discount.get("start")) if discount else None,
        collection_method=str(subscription.get("collection_method") or "charge_automatically"),
        days_until_due=subscription.get("days_until_due"),
        cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
        metadata={**(subscription.get("metadata") or {}), "stripe_id": subscription["id"]},
    )
