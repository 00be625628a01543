"""Reads: what a pricing table or payment link shows, and how often a link was used."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing.checkout.models import CheckoutSession
from billing.entitlements.models import ProductFeature
from billing.models import Price
from billing.selectors import cycle_spec, price_amount_for
from billing.storefront.models import PaymentLink, PaymentLinkItem, PricingTable, PricingTableEntry
from config.formatting import format_money

INTERVALS = ("month", "year")
TIERED = (Price.Scheme.TIERED_GRADUATED, Price.Scheme.TIERED_VOLUME)


def price_interval(price: Price) -> str | None:
    """ "month" or "year" for a price billing every month or every year, else None."""
    if price.type != Price.Type.RECURRING or not price.cycle:
        return None
    try:
        spec = cycle_spec(price.cycle)
    except (ValueError, TypeError):
        return None
    if spec.kind == "interval" and spec.count == 1 and spec.unit in INTERVALS:
        return str(spec.unit)
    return None


def _cycle_text(price: Price) -> str:
    if price.type != Price.Type.RECURRING:
        return _("once")
    spec = cycle_spec(price.cycle)
    if spec.kind != "interval":
        return _("per billing period")
    count, unit = spec.count, str(spec.unit)
    labels = {
        "day": ngettext("per day", "every %(count)d days", count),
        "week": ngettext("per week", "every %(count)d weeks", count),
        "month": ngettext("per month", "every %(count)d months", count),
        "year": ngettext("per year", "every %(count)d years", count),
    }
    return labels.get(unit, _("per billing period")) % {"count": count}


@dataclass(frozen=True, slots=True)
class PriceDisplay:
    """A price as a visitor reads it: "From €9.00", "per seat", "per month"."""

    amount: int
    currency: str
    amount_text: str
    starts_from: bool
    unit_text: str
    cycle_text: str

    @property
    def text(self) -> str:
        parts = [self.amount_text, self.unit_text, self.cycle_text]
        return " ".join(part for part in parts if part)


def price_display(price: Price) -> PriceDisplay:
    """What one unit costs per cycle, through the one money formatter; tiered prices say "from"
    the price of the first unit, a per-unit price names its unit ("per seat")."""
    amount = price_amount_for(price=price, quantity=1)
    money = format_money(amount, price.currency)
    starts_from = price.scheme in TIERED
    unit_text = ""
    unit_label = price.product.unit_label
    if price.scheme == Price.Scheme.PACKAGE and price.package_size > 1:
        amount = price_amount_for(price=price, quantity=price.package_size)
        money = format_money(amount, price.currency)
        unit_text = _("per %(size)d %(unit)s") % {"size": price.package_size, "unit": unit_label or _("units")}
    elif unit_label and (price.scheme == Price.Scheme.PER_UNIT or starts_from):
        unit_text = _("per %(unit)s") % {"unit": unit_label}
    amount_text = _("From %(amount)s") % {"amount": money} if starts_from else money
    return PriceDisplay(
        amount=amount,
        currency=price.currency,
        amount_text=amount_text,
        starts_from=starts_from,
        unit_text=unit_text,
        cycle_text=_cycle_text(price),
    )


def _feature_text(grant: ProductFeature) -> str:
    feature = grant.feature
    if grant.quantity is None:
        return feature.name
    label = _("%(quantity)s %(name)s") % {"quantity": grant.quantity, "name": feature.name}
    if grant.per_unit:
        unit = grant.product.unit_label or _("unit")
        return _("%(feature)s per %(unit)s") % {"feature": label, "unit": unit}
    return label


def product_feature_lines(*, product_ids: list[int]) -> dict[int, list[str]]:
    """The entitlement features each product grants, as lines for a pricing card (active features only)."""
    lines: dict[int, list[str]] = {}
    grants = (
        ProductFeature.objects.filter(product_id__in=product_ids, feature__active=True)
        .select_related("feature", "product")
        .order_by("product_id", "feature__name", "pk")
    )
    for grant in grants:
        lines.setdefault(grant.product_id, []).append(_feature_text(grant))
    return lines


@dataclass(frozen=True, slots=True)
class PricingCard:
    position: int
    product_name: str
    description: str
    price: Price | None
    display: PriceDisplay | None
    features: tuple[str, ...]
    highlighted: bool
    trial_days: int | None


def pricing_table_by_public_id(*, public_id: str) -> PricingTable | None:
    """The active table behind a public URL (its brand and mode come with it), or None."""
    return PricingTable.objects.select_related("brand").filter(public_id=public_id, active=True).first()


def pricing_table_entries(*, table: PricingTable) -> QuerySet[PricingTableEntry]:
    return table.entries.select_related("product", "monthly_price__product", "yearly_price__product").order_by(
        "position"
    )


def pricing_table_intervals(*, entries: list[PricingTableEntry]) -> tuple[str, ...]:
    """The intervals any entry has a price for, monthly first."""
    found = []
    if any(entry.monthly_price_id for entry in entries):
        found.append("month")
    if any(entry.yearly_price_id for entry in entries):
        found.append("year")
    return tuple(found)


def pricing_table_cards(*, table: PricingTable, entries: list[PricingTableEntry], interval: str) -> list[PricingCard]:
    """One card per entry for one interval; an entry without a price for it shows no price."""
    features = product_feature_lines(product_ids=[entry.product_id for entry in entries])
    cards = []
    for entry in entries:
        price = entry.monthly_price if interval == "month" else entry.yearly_price
        trial = table.trial_period_days or (price.trial_days if price is not None and price.trial_days else None)
        cards.append(
            PricingCard(
                position=entry.position,
                product_name=entry.product.name,
                description=entry.product.description,
                price=price,
                display=price_display(price) if price is not None else None,
                features=tuple(features.get(entry.product_id) or entry.features or ()),
                highlighted=entry.highlighted,
                trial_days=trial,
            )
        )
    return cards


def payment_link_by_public_id(*, public_id: str) -> PaymentLink | None:
    """The link behind a public URL, active or not (a deactivated link says so: 410)."""
    return PaymentLink.objects.select_related("brand").filter(public_id=public_id).first()


def payment_link_items(*, link: PaymentLink) -> QuerySet[PaymentLinkItem]:
    return link.items.select_related("price__product").order_by("position")


def _completed_sessions() -> QuerySet[CheckoutSession]:
    return CheckoutSession.objects.filter(
        origin=CheckoutSession.Origin.PAYMENT_LINK, status=CheckoutSession.Status.COMPLETE
    )


def payment_link_usage_count(*, link: PaymentLink) -> int:
    """How many checkout sessions started from the link completed."""
    return _completed_sessions().filter(origin_id=link.public_id).count()


def payment_links_with_usage(queryset: QuerySet[PaymentLink] | None = None) -> QuerySet[PaymentLink]:
    """Links annotated with `usage_count` (completed checkout sessions), one subquery."""
    queryset = PaymentLink.objects.all() if queryset is None else queryset
    counts = (
        _completed_sessions()
        .filter(origin_id=OuterRef("public_id"))
        .order_by()
        .values("origin_id")
        .annotate(total=Count("pk"))
        .values("total")
    )
    return queryset.annotate(usage_count=Coalesce(Subquery(counts), Value(0)))


def payment_link_query(*, livemode: bool | None, active: bool | None = None) -> QuerySet[PaymentLink]:
    queryset = PaymentLink.objects.select_related("brand")
    if livemode is not None:
        queryset = queryset.filter(livemode=livemode)
    if active is not None:
        queryset = queryset.filter(Q(active=active))
    return queryset
