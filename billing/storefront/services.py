"""Writes: pricing tables, payment links, and the checkout sessions they start.

Every console form, API call and demo seed goes through these functions. Tables and links are
configuration outside the lock order (no select_for_update helper): a table's entries are rewritten
in the transaction that first updates the table's own row, so two saves of one table queue on that
row and the last one wins whole (tests/billing/storefront/test_races.py); should they still collide
on an entry's position, the second is refused ("changed meanwhile") instead of mixing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from billing.checkout.models import CheckoutSession
from billing.checkout.services import checkout_session_create
from billing.limits import MAX_QUANTITY
from billing.models import Price
from billing.storefront.errors import StorefrontError, StorefrontUnavailable
from billing.storefront.models import (
    MAX_LINK_ITEMS,
    MAX_TABLE_ENTRIES,
    MAX_TRIAL_DAYS,
    PaymentLink,
    PaymentLinkItem,
    PricingTable,
    PricingTableEntry,
)
from billing.storefront.selectors import price_interval
from config import clock
from config.events.log import event_record
from config.types import ActingUser, JsonDict
from invoices.models import Brand

MAX_FEATURES_PER_ENTRY = 12
MAX_FEATURE_LENGTH = 120

TABLE_FIELDS = (
    "name",
    "button_label",
    "trial_period_days",
    "allow_promotion_codes",
    "success_url",
    "cancel_url",
    "embed_origins",
    "active",
)
LINK_FIELDS = ("name", "trial_period_days", "allow_promotion_codes", "after_completion_url", "active")


@dataclass(frozen=True)
class TableEntrySpec:
    """One product of a pricing table as asked: its monthly and/or yearly price."""

    monthly_price: Price | None = None
    yearly_price: Price | None = None
    features: tuple[str, ...] = field(default_factory=tuple)
    highlighted: bool = False


@dataclass(frozen=True)
class LinkItemSpec:
    """One line of a payment link: a price, its quantity and optional bounds the buyer may choose within."""

    price: Price
    quantity: int = 1
    adjustable_minimum: int | None = None
    adjustable_maximum: int | None = None


# -- checks shared by tables and links ------------------------------------------------------------


def _check_price(price: Price, *, livemode: bool, field_name: str) -> None:
    if price.livemode != livemode:
        # Never say "it exists in the other mode": the same words as an unknown price.
        raise StorefrontError({field_name: _("Choose a price of this mode.")}, code="price_not_found")
    if not price.active or not price.product.active:
        raise StorefrontError(
            {field_name: _("%(price)s is archived: choose an active price.") % {"price": price}}, code="price_inactive"
        )
    if price.usage_type == Price.UsageType.METERED:
        raise StorefrontError(
            {field_name: _("A metered price cannot be sold at a fixed quantity: choose a licensed price.")},
            code="price_metered",
        )


def _check_trial(trial_period_days: int | None) -> None:
    if trial_period_days is not None and not 1 <= trial_period_days <= MAX_TRIAL_DAYS:
        raise StorefrontError(
            {"trial_period_days": _("A trial lasts from 1 to %(max)d days.") % {"max": MAX_TRIAL_DAYS}},
            code="trial_out_of_bounds",
        )


def _check_embed_origins(text: str) -> None:
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        parts = urlsplit(line)
        local = parts.hostname in ("localhost", "127.0.0.1")
        if (
            parts.scheme not in ("https", "http")
            or (parts.scheme == "http" and not local)
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or "*" in line
            or " " in line
        ):
            raise StorefrontError(
                {
                    "embed_origins": _(
                        "%(origin)s is not a site origin: write it as https://www.example.com (no path)."
                    )
                    % {"origin": line}
                },
                code="invalid_embed_origin",
            )


def _check_brand(brand: Brand | None) -> Brand:
    if brand is None:
        raise StorefrontError({"brand": _("Choose the brand the page is shown in.")}, code="brand_required")
    return brand


# -- pricing tables ------------------------------------------------------------------------------


def _clean_features(features: Sequence[str]) -> list[str]:
    cleaned = [str(feature).strip() for feature in features if str(feature).strip()]
    if len(cleaned) > MAX_FEATURES_PER_ENTRY or any(len(feature) > MAX_FEATURE_LENGTH for feature in cleaned):
        raise StorefrontError(
            {
                "entries": _("At most %(count)d features of %(length)d characters each per product.")
                % {"count": MAX_FEATURES_PER_ENTRY, "length": MAX_FEATURE_LENGTH}
            },
            code="too_many_features",
        )
    return cleaned


def pricing_table_entries_validate(*, livemode: bool, entries: Sequence[TableEntrySpec]) -> None:
    """Refuse entries a visitor could not check out: the rule the console's form and the API share."""
    if not 1 <= len(entries) <= MAX_TABLE_ENTRIES:
        raise StorefrontError(
            {"entries": _("A pricing table shows 1 to %(max)d products.") % {"max": MAX_TABLE_ENTRIES}},
            code="entry_count",
        )
    if sum(1 for entry in entries if entry.highlighted) > 1:
        raise StorefrontError({"entries": _("Highlight one product at most.")}, code="one_highlight")
    currencies: set[str] = set()
    products: set[int] = set()
    for entry in entries:
        if entry.monthly_price is None and entry.yearly_price is None:
            raise StorefrontError(
                {"entries": _("Each product needs a monthly or a yearly price.")}, code="entry_without_price"
            )
        for price, interval, field_name in (
            (entry.monthly_price, "month", "monthly_price"),
            (entry.yearly_price, "year", "yearly_price"),
        ):
            if price is None:
                continue
            _check_price(price, livemode=livemode, field_name=field_name)
            if price.type != Price.Type.RECURRING or price_interval(price) != interval:
                message = (
                    _("%(price)s does not bill every month.")
                    if interval == "month"
                    else _("%(price)s does not bill every year.")
                )
                raise StorefrontError({field_name: message % {"price": price}}, code="price_interval")
            currencies.add(price.currency)
        prices = [price for price in (entry.monthly_price, entry.yearly_price) if price is not None]
        if len({price.product_id for price in prices}) > 1:
            raise StorefrontError(
                {"yearly_price": _("The monthly and yearly prices must be of the same product.")},
                code="entry_products_differ",
            )
        product_id = prices[0].product_id
        if product_id in products:
            raise StorefrontError({"entries": _("Each product appears once in a table.")}, code="product_twice")
        products.add(product_id)
        _clean_features(entry.features)
    if len(currencies) > 1:
        raise StorefrontError(
            {"entries": _("All prices of a table must be in one currency.")}, code="currencies_differ"
        )


def _write_entries(table: PricingTable, entries: Sequence[TableEntrySpec]) -> None:
    PricingTableEntry.objects.filter(table=table).delete()
    rows = []
    for position, entry in enumerate(entries):
        price = entry.monthly_price or entry.yearly_price
        assert price is not None  # validated
        rows.append(
            PricingTableEntry(
                table=table,
                position=position,
                product_id=price.product_id,
                monthly_price=entry.monthly_price,
                yearly_price=entry.yearly_price,
                features=_clean_features(entry.features),
                highlighted=entry.highlighted,
            )
        )
    PricingTableEntry.objects.bulk_create(rows)


def _table_event(table: PricingTable, kind: str, acting_user: ActingUser, data: Mapping[str, Any]) -> None:
    event_record(
        type=f"pricing_table.{kind}",
        object_type="pricing_table",
        object_id=table.public_id,
        customer_id=None,
        occurred_at=clock.now(),
        data={"pricing_table": table.public_id, **data},
        acting_user=acting_user,
        livemode=table.livemode,
    )


def pricing_table_validate(*, changes: JsonDict) -> None:
    """The field checks of a table (not its entries): trial bounds, embed origins."""
    if "trial_period_days" in changes:
        _check_trial(changes["trial_period_days"])
    if "embed_origins" in changes:
        _check_embed_origins(changes["embed_origins"] or "")


def pricing_table_create(
    *,
    brand: Brand | None,
    livemode: bool,
    name: str,
    entries: Sequence[TableEntrySpec],
    button_label: str = "",
    trial_period_days: int | None = None,
    allow_promotion_codes: bool = False,
    success_url: str = "",
    cancel_url: str = "",
    embed_origins: str = "",
    acting_user: ActingUser = None,
) -> PricingTable:
    seller = _check_brand(brand)
    pricing_table_validate(changes={"trial_period_days": trial_period_days, "embed_origins": embed_origins})
    pricing_table_entries_validate(livemode=livemode, entries=entries)
    with transaction.atomic(savepoint=False):
        table = PricingTable.objects.create(
            brand=seller,
            livemode=livemode,
            name=name,
            button_label=button_label,
            trial_period_days=trial_period_days,
            allow_promotion_codes=allow_promotion_codes,
            success_url=success_url,
            cancel_url=cancel_url,
            embed_origins=embed_origins,
        )
        _write_entries(table, entries)
        _table_event(table, "created", acting_user, {"name": name, "entries": len(entries)})
    return table


def pricing_table_update(
    *,
    table: PricingTable,
    changes: JsonDict,
    entries: Sequence[TableEntrySpec] | None = None,
    acting_user: ActingUser = None,
) -> PricingTable:
    """Change a table's settings and, when `entries` is given, replace its products."""
    unknown = set(changes) - set(TABLE_FIELDS)
    if unknown:
        raise StorefrontError(
            _("These fields cannot be changed: %(fields)s.") % {"fields": ", ".join(sorted(unknown))},
            code="field_frozen",
        )
    pricing_table_validate(changes=changes)
    if entries is not None:
        pricing_table_entries_validate(livemode=table.livemode, entries=entries)
    try:
        with transaction.atomic(savepoint=False):
            for name, value in changes.items():
                setattr(table, name, value)
            table.save()
            if entries is not None:
                _write_entries(table, entries)
            _table_event(table, "updated", acting_user, {"changed": sorted(changes) + (["entries"] if entries else [])})
    except IntegrityError as error:  # another staff member rewrote the entries at the same time
        raise StorefrontError(_("The table was changed meanwhile: reload and try again."), code="conflict") from error
    return table


def pricing_table_set_active(*, table: PricingTable, active: bool, acting_user: ActingUser = None) -> PricingTable:
    return pricing_table_update(table=table, changes={"active": active}, acting_user=acting_user)


# -- payment links -------------------------------------------------------------------------------


def payment_link_items_validate(*, livemode: bool, mode: str, items: Sequence[LinkItemSpec]) -> None:
    if not 1 <= len(items) <= MAX_LINK_ITEMS:
        raise StorefrontError(
            {"items": _("A payment link sells 1 to %(max)d prices.") % {"max": MAX_LINK_ITEMS}}, code="item_count"
        )
    currencies, cycles, prices = set(), set(), set()
    for item in items:
        _check_price(item.price, livemode=livemode, field_name="items")
        if item.price.pk in prices:
            raise StorefrontError({"items": _("Each price appears once in a link.")}, code="price_twice")
        prices.add(item.price.pk)
        currencies.add(item.price.currency)
        if item.price.type == Price.Type.RECURRING:
            cycles.add(price_interval(item.price) or repr(item.price.cycle))
            if mode == PaymentLink.Mode.PAYMENT:
                raise StorefrontError(
                    {"items": _("A one-time payment link sells one-time prices only.")}, code="recurring_in_payment"
                )
        if not 1 <= item.quantity <= MAX_QUANTITY:
            raise StorefrontError(
                {"items": _("A quantity is between 1 and %(max)d.") % {"max": MAX_QUANTITY}}, code="quantity_bounds"
            )
        minimum, maximum = item.adjustable_minimum, item.adjustable_maximum
        if (minimum is None) != (maximum is None):
            raise StorefrontError(
                {"items": _("An adjustable quantity needs both a minimum and a maximum.")}, code="quantity_bounds"
            )
        if (
            minimum is not None
            and maximum is not None
            and not (1 <= minimum <= item.quantity <= maximum <= MAX_QUANTITY)
        ):
            raise StorefrontError(
                {"items": _("The quantity must lie between the minimum and the maximum.")}, code="quantity_bounds"
            )
    if mode == PaymentLink.Mode.SUBSCRIPTION and not cycles:
        raise StorefrontError(
            {"items": _("A subscription link needs at least one recurring price.")}, code="no_recurring_price"
        )
    if len(cycles) > 1:
        raise StorefrontError(
            {"items": _("The recurring prices of a link must bill on the same cycle.")}, code="cycles_differ"
        )
    if len(currencies) > 1:
        raise StorefrontError({"items": _("All prices of a link must be in one currency.")}, code="currencies_differ")


def _link_event(link: PaymentLink, kind: str, acting_user: ActingUser, data: Mapping[str, Any]) -> None:
    event_record(
        type=f"payment_link.{kind}",
        object_type="payment_link",
        object_id=link.public_id,
        customer_id=None,
        occurred_at=clock.now(),
        data={"payment_link": link.public_id, **data},
        acting_user=acting_user,
        livemode=link.livemode,
    )


def payment_link_validate(*, mode: str, changes: JsonDict) -> None:
    if "trial_period_days" in changes:
        _check_trial(changes["trial_period_days"])
        if changes["trial_period_days"] and mode != PaymentLink.Mode.SUBSCRIPTION:
            raise StorefrontError(
                {"trial_period_days": _("Only a subscription link can offer a trial.")},
                code="trial_without_subscription",
            )


def payment_link_create(
    *,
    brand: Brand | None,
    livemode: bool,
    name: str,
    mode: str,
    items: Sequence[LinkItemSpec],
    trial_period_days: int | None = None,
    allow_promotion_codes: bool = False,
    after_completion_url: str = "",
    acting_user: ActingUser = None,
) -> PaymentLink:
    seller = _check_brand(brand)
    if mode not in PaymentLink.Mode.values:
        raise StorefrontError({"mode": _("Choose subscription or one-time payment.")}, code="invalid_mode")
    payment_link_validate(mode=mode, changes={"trial_period_days": trial_period_days})
    payment_link_items_validate(livemode=livemode, mode=mode, items=items)
    with transaction.atomic(savepoint=False):
        link = PaymentLink.objects.create(
            brand=seller,
            livemode=livemode,
            name=name,
            mode=mode,
            trial_period_days=trial_period_days,
            allow_promotion_codes=allow_promotion_codes,
            after_completion_url=after_completion_url,
        )
        PaymentLinkItem.objects.bulk_create(
            PaymentLinkItem(
                link=link,
                position=position,
                price=item.price,
                quantity=item.quantity,
                adjustable_minimum=item.adjustable_minimum,
                adjustable_maximum=item.adjustable_maximum,
            )
            for position, item in enumerate(items)
        )
        _link_event(link, "created", acting_user, {"name": name, "mode": mode})
    return link


def payment_link_update(*, link: PaymentLink, changes: JsonDict, acting_user: ActingUser = None) -> PaymentLink:
    """Change a link's name, trial, promotion codes, redirect or active flag; its prices are fixed
    (a shared URL keeps selling what it said: make a new link for other prices)."""
    unknown = set(changes) - set(LINK_FIELDS)
    if unknown:
        raise StorefrontError(
            _("These fields cannot be changed: %(fields)s.") % {"fields": ", ".join(sorted(unknown))},
            code="field_frozen",
        )
    payment_link_validate(mode=link.mode, changes=changes)
    with transaction.atomic(savepoint=False):
        for name, value in changes.items():
            setattr(link, name, value)
        link.save()
        kind = "updated"
        if set(changes) == {"active"}:
            kind = "activated" if changes["active"] else "deactivated"
        _link_event(link, kind, acting_user, {"changed": sorted(changes)})
    return link


def payment_link_deactivate(*, link: PaymentLink, acting_user: ActingUser = None) -> PaymentLink:
    return payment_link_update(link=link, changes={"active": False}, acting_user=acting_user)


def payment_link_reactivate(*, link: PaymentLink, acting_user: ActingUser = None) -> PaymentLink:
    return payment_link_update(link=link, changes={"active": True}, acting_user=acting_user)


def _unavailable() -> StorefrontUnavailable:
    return StorefrontUnavailable(_("This offer is no longer available."), code="no_longer_available")


# -- starting a checkout -------------------------------------------------------------------------


def pricing_table_checkout_start(
    *, table: PricingTable, price_id: int, success_url: str, cancel_url: str
) -> CheckoutSession:
    """A checkout session for one of the table's prices, in the table's brand and mode."""
    if not table.active:
        raise _unavailable()
    entry = (
        PricingTableEntry.objects.select_related("monthly_price__product", "yearly_price__product")
        .filter(table=table)
        .filter(Q(monthly_price_id=price_id) | Q(yearly_price_id=price_id))
        .first()
    )
    if entry is None:
        raise StorefrontError(_("This plan is not offered here."), code="price_not_in_table")
    price = entry.monthly_price if entry.monthly_price_id == price_id else entry.yearly_price
    assert price is not None
    if not price.active or not price.product.active or price.livemode != table.livemode:
        raise _unavailable()
    trial = table.trial_period_days or price.trial_days or None
    return checkout_session_create(
        brand=table.brand,
        livemode=table.livemode,
        mode="subscription",
        line_items=[(price, 1)],
        success_url=success_url,
        cancel_url=cancel_url,
        trial_period_days=trial,
        allow_promotion_codes=table.allow_promotion_codes,
        origin="pricing_table",
        origin_id=table.public_id,
    )


def payment_link_checkout_start(
    *, link: PaymentLink, quantities: Mapping[int, int], success_url: str, cancel_url: str
) -> CheckoutSession:
    """A checkout session for the link's prices; `quantities` (item id -> quantity) for adjustable items."""
    if not link.active:
        raise _unavailable()
    line_items = []
    for item in PaymentLinkItem.objects.select_related("price__product").filter(link=link).order_by("position"):
        quantity = item.quantity
        if item.adjustable and item.pk in quantities:
            quantity = quantities[item.pk]
            if not item.adjustable_minimum <= quantity <= item.adjustable_maximum:  # type: ignore[operator]
                raise StorefrontError(
                    _("Choose a quantity from %(min)d to %(max)d.")
                    % {"min": item.adjustable_minimum, "max": item.adjustable_maximum},
                    code="quantity_bounds",
                )
        if not item.price.active or not item.price.product.active or item.price.livemode != link.livemode:
            raise _unavailable()
        line_items.append((item.price, quantity))
    if not line_items:
        raise _unavailable()
    return checkout_session_create(
        brand=link.brand,
        livemode=link.livemode,
        mode=link.mode,
        line_items=line_items,
        success_url=success_url,
        cancel_url=cancel_url,
        trial_period_days=link.trial_period_days if link.mode == PaymentLink.Mode.SUBSCRIPTION else None,
        allow_promotion_codes=link.allow_promotion_codes,
        origin="payment_link",
        origin_id=link.public_id,
    )
