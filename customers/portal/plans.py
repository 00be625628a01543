"""Plan cards: what every plan the portal offers costs per cycle, and how it differs from the others.

Reads only (a selector module). Prices are described from the catalog as the billing engine
reads them: a per-unit price costs its unit amount per unit ("per seat" when the product names
its unit), a tiered price "from" its cheapest unit, a package price per package, a metered
price per unit used. Features come from the entitlements app (the product's feature grants);
a product without any shows its description instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing.entitlements.models import ProductFeature
from billing.models import Price
from billing.selectors import cycle_spec
from config.console import format_minor_decimal
from customers.portal.selectors import cycle_label


@dataclass(frozen=True, slots=True)
class PriceSummary:
    amount: str  # "€49.00", "from €4.00"
    unit: str  # "per seat", "per 100 units", "per unit used", "" (one flat amount)
    cycle: str  # "per month", "per year"
    per_month: str  # a yearly (or longer) plan's monthly equivalent, "" otherwise


@dataclass(frozen=True, slots=True)
class PlanCard:
    price: Any
    name: str
    variant: str  # the price's nickname, else its scheme when two prices of one product look alike
    summary: PriceSummary
    features: tuple[str, ...]
    description: str
    differences: tuple[tuple[str, bool], ...]  # (feature, gained?) compared with the current plan
    is_current: bool
    per_unit: bool  # the quantity changes the price (seats, units)
    trial_days: int


def _unit_name(price: Any) -> str:
    return price.product.unit_label or _("unit")


def _lowest_tier_amount(price: Any) -> Decimal | None:
    amounts = [Decimal(str(tier.get("unit_amount") or 0)) for tier in price.tiers or []]
    positive = [amount for amount in amounts if amount > 0]
    if positive:
        return min(positive)
    flats = [Decimal(str(tier.get("flat_amount") or 0)) for tier in price.tiers or []]
    positive_flats = [amount for amount in flats if amount > 0]
    return min(positive_flats) if positive_flats else None


def price_summary(price: Any) -> PriceSummary:
    """One price as a customer reads it, in the active language."""
    currency = price.currency
    cycle = cycle_label(price.cycle) if price.cycle else ""
    unit = _unit_name(price)
    per_month = ""
    if price.usage_type == Price.UsageType.METERED:
        if price.scheme in (Price.Scheme.TIERED_GRADUATED, Price.Scheme.TIERED_VOLUME):
            lowest = _lowest_tier_amount(price)
            amount = _("from %(amount)s") % {"amount": format_minor_decimal(lowest or Decimal(0), currency)}
        elif price.scheme == Price.Scheme.PACKAGE:
            amount = format_minor_decimal(price.unit_amount or Decimal(0), currency)
            return PriceSummary(
                amount=amount,
                unit=ngettext("per %(size)d %(unit)s used", "per %(size)d %(unit)s used", price.package_size)
                % {"size": price.package_size, "unit": unit},
                cycle=cycle,
                per_month="",
            )
        elif price.scheme == Price.Scheme.PERCENTAGE:
            return PriceSummary(
                amount=f"{price.percentage_rate} %", unit=_("of each transaction"), cycle=cycle, per_month=""
            )
        else:
            amount = format_minor_decimal(price.unit_amount or Decimal(0), currency)
        return PriceSummary(
            amount=amount, unit=_("per %(unit)s used") % {"unit": unit}, cycle=cycle, per_month=per_month
        )
    if price.scheme in (Price.Scheme.TIERED_GRADUATED, Price.Scheme.TIERED_VOLUME):
        lowest = _lowest_tier_amount(price)
        amount = _("from %(amount)s") % {"amount": format_minor_decimal(lowest or Decimal(0), currency)}
        return PriceSummary(amount=amount, unit=_("per %(unit)s") % {"unit": unit}, cycle=cycle, per_month="")
    if price.scheme == Price.Scheme.PACKAGE:
        amount = format_minor_decimal(price.unit_amount or Decimal(0), currency)
        units = price.product.unit_label or (_("units") if price.package_size > 1 else _("unit"))
        unit_text = _("per %(size)d %(unit)s") % {"size": price.package_size, "unit": units}
        return PriceSummary(amount=amount, unit=unit_text, cycle=cycle, per_month="")
    unit_amount = price.unit_amount or Decimal(0)
    amount = format_minor_decimal(unit_amount, currency)
    if price.cycle:
        periods = cycle_spec(price.cycle).periods_per_year()
        if periods and periods < 12:
            # Shown only to compare cycles ("i.e. €40.83 a month"), never billed.
            share = Fraction(unit_amount) * periods / 12
            monthly = (Decimal(share.numerator) / Decimal(share.denominator)).quantize(Decimal(1))
            per_month = _("%(amount)s a month") % {"amount": format_minor_decimal(monthly, currency)}
    unit_text = _("per %(unit)s") % {"unit": price.product.unit_label} if price.product.unit_label else ""
    return PriceSummary(amount=amount, unit=unit_text, cycle=cycle, per_month=per_month)


def _features_by_product(product_ids: Iterable[int]) -> dict[int, list[str]]:
    grants = (
        ProductFeature.objects.filter(product_id__in=set(product_ids))
        .select_related("feature")
        .order_by("product_id", "feature__name", "pk")
    )
    features: dict[int, list[str]] = {}
    for grant in grants:
        feature = grant.feature
        if grant.quantity is None:
            text = feature.name
        else:
            text = f"{feature.name}: {grant.quantity}"
            if feature.unit_label:
                text += f" {feature.unit_label}"
            if grant.per_unit:
                text += " " + (_("per %(unit)s") % {"unit": grant.product.unit_label or _("unit")})
        features.setdefault(grant.product_id, []).append(text)
    return features


def _scheme_label(price: Any) -> str:
    if price.usage_type == Price.UsageType.METERED:
        return _("billed on usage")
    labels = {
        Price.Scheme.TIERED_GRADUATED: _("tiered pricing"),
        Price.Scheme.TIERED_VOLUME: _("volume pricing"),
        Price.Scheme.PACKAGE: _("sold by package"),
    }
    return str(labels.get(price.scheme, _("fixed price")))


def plan_cards(*, prices: Sequence[Any], current_price_ids: Iterable[int] = ()) -> list[PlanCard]:
    """Cards for `prices` (loaded with their product), the current plan marked, each card saying
    what it adds or lacks compared with the current plan, and look-alike prices told apart."""
    prices = list(prices)
    current = set(current_price_ids)
    features = _features_by_product(price.product_id for price in prices)
    current_products = {price.product_id for price in prices if price.pk in current}
    current_features: set[str] = set()
    for product_id in current_products:
        current_features.update(features.get(product_id, []))
    # Two prices of one product on the same cycle look alike: name the difference (scheme, nickname).
    seen: dict[tuple[int, str], int] = {}
    for price in prices:
        key = (price.product_id, cycle_label(price.cycle) if price.cycle else "")
        seen[key] = seen.get(key, 0) + 1
    cards = []
    for price in prices:
        own = features.get(price.product_id, [])
        key = (price.product_id, cycle_label(price.cycle) if price.cycle else "")
        variant = price.nickname
        if seen[key] > 1:
            variant = f"{variant} · {_scheme_label(price)}" if variant else _scheme_label(price)
        differences: tuple[tuple[str, bool], ...] = ()
        if current_products and price.product_id not in current_products:
            gained = [(name, True) for name in own if name not in current_features]
            lost = [(name, False) for name in sorted(current_features) if name not in own]
            differences = tuple(gained + lost)
        cards.append(
            PlanCard(
                price=price,
                name=price.product.name,
                variant=variant,
                summary=price_summary(price),
                features=tuple(own),
                description="" if own else price.product.description,
                differences=differences,
                is_current=price.pk in current,
                per_unit=price.scheme != Price.Scheme.PER_UNIT or bool(price.product.unit_label),
                trial_days=price.trial_days,
            )
        )
    return cards
