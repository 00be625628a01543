"""Pricing tables and payment links: what the services accept and what they refuse."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing.models import Price
from billing.storefront.errors import StorefrontError
from billing.storefront.models import PaymentLink, PricingTable
from billing.storefront.services import (
    LinkItemSpec,
    TableEntrySpec,
    payment_link_create,
    payment_link_deactivate,
    payment_link_reactivate,
    payment_link_update,
    pricing_table_create,
    pricing_table_update,
)
from config.events.models import DomainEvent
from tests.billing.storefront.conftest import MONTH

pytestmark = pytest.mark.django_db


def _table(brand, entries, **fields):
    return pricing_table_create(brand=brand, livemode=True, name="Plans", entries=entries, **fields)


def _refusal(error: pytest.ExceptionInfo) -> str:
    return error.value.problem_code


def test_a_table_is_created_with_ordered_entries_a_random_public_id_and_an_event(shop_brand, catalogue):
    flat, seat = catalogue["flat"], catalogue["seat"]

    table = _table(
        shop_brand,
        [
            TableEntrySpec(monthly_price=flat[0], yearly_price=flat[1], features=(" Email support ", "")),
            TableEntrySpec(monthly_price=seat[0], highlighted=True),
        ],
        trial_period_days=14,
    )

    assert table.public_id.startswith("prctbl_") and len(table.public_id) == len("prctbl_") + 24
    entries = list(table.entries.order_by("position"))
    assert [(entry.product_id, entry.highlighted) for entry in entries] == [
        (flat[0].product_id, False),
        (seat[0].product_id, True),
    ]
    assert entries[0].features == ["Email support"]
    event = DomainEvent.objects.get(type="pricing_table.created")
    assert event.object_id == table.public_id and event.livemode is True


def test_two_tables_never_share_a_public_id(shop_brand, catalogue):
    entries = [TableEntrySpec(monthly_price=catalogue["flat"][0])]
    ids = {_table(shop_brand, entries).public_id for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("other_mode", "price_not_found"),
        ("inactive", "price_inactive"),
        ("archived_product", "price_inactive"),
        ("metered", "price_metered"),
        ("yearly_as_monthly", "price_interval"),
        ("one_time", "price_interval"),
    ],
)
def test_a_table_refuses_a_price_a_visitor_could_not_buy(
    shop_brand, catalogue, price_factory, meter_factory, change, code
):
    price = catalogue["flat"][0]
    if change == "other_mode":
        price = price_factory(product__livemode=False, livemode=False, cycle=MONTH)
    elif change == "inactive":
        price.active = False
        price.save()
    elif change == "archived_product":
        price.product.active = False
        price.product.save()
    elif change == "metered":
        price = price_factory(usage_type=Price.UsageType.METERED, meter=meter_factory(), cycle=MONTH)
    elif change == "yearly_as_monthly":
        price = catalogue["flat"][1]
    elif change == "one_time":
        price = price_factory(type=Price.Type.ONE_TIME, cycle=None)

    with pytest.raises(StorefrontError) as refused:
        _table(shop_brand, [TableEntrySpec(monthly_price=price)])

    assert _refusal(refused) == code
    assert not PricingTable.objects.exists()


def test_a_table_refuses_mixed_currencies_products_twice_two_highlights_and_no_price(
    shop_brand, catalogue, price_factory
):
    flat, seat = catalogue["flat"], catalogue["seat"]
    dollars = price_factory(currency="USD", cycle=MONTH)
    cases = [
        ([TableEntrySpec(monthly_price=flat[0]), TableEntrySpec(monthly_price=dollars)], "currencies_differ"),
        ([TableEntrySpec(monthly_price=flat[0]), TableEntrySpec(yearly_price=flat[1])], "product_twice"),
        (
            [
                TableEntrySpec(monthly_price=flat[0], highlighted=True),
                TableEntrySpec(monthly_price=seat[0], highlighted=True),
            ],
            "one_highlight",
        ),
        ([TableEntrySpec()], "entry_without_price"),
        ([TableEntrySpec(monthly_price=flat[0], yearly_price=seat[1])], "entry_products_differ"),
        ([], "entry_count"),
    ]
    for entries, code in cases:
        with pytest.raises(StorefrontError) as refused:
            _table(shop_brand, entries)
        assert _refusal(refused) == code, entries
    assert not PricingTable.objects.exists()


@pytest.mark.parametrize(
    "origin", ["http://shop.example.com", "https://shop.example.com/pricing", "https://*.example.com", "javascript:x"]
)
def test_a_table_refuses_an_embed_origin_that_is_not_an_https_origin(shop_brand, catalogue, origin):
    with pytest.raises(StorefrontError) as refused:
        _table(shop_brand, [TableEntrySpec(monthly_price=catalogue["flat"][0])], embed_origins=origin)
    assert _refusal(refused) == "invalid_embed_origin"


def test_a_table_needs_a_brand(catalogue):
    with pytest.raises(StorefrontError) as refused:
        pricing_table_create(
            brand=None, livemode=True, name="x", entries=[TableEntrySpec(monthly_price=catalogue["flat"][0])]
        )
    assert _refusal(refused) == "brand_required"


def test_updating_a_table_replaces_its_entries_and_keeps_its_public_id(shop_brand, catalogue):
    table = _table(shop_brand, [TableEntrySpec(monthly_price=catalogue["flat"][0])])
    public_id = table.public_id

    pricing_table_update(
        table=table,
        changes={"name": "Spring plans", "trial_period_days": 30},
        entries=[TableEntrySpec(yearly_price=catalogue["seat"][1], highlighted=True)],
    )

    table.refresh_from_db()
    assert (table.public_id, table.name, table.trial_period_days) == (public_id, "Spring plans", 30)
    assert [(entry.product_id, entry.monthly_price_id, entry.highlighted) for entry in table.entries.all()] == [
        (catalogue["seat"][1].product_id, None, True)
    ]


def test_a_table_update_refuses_frozen_fields_and_bad_entries_and_keeps_the_old_ones(
    shop_brand, catalogue, price_factory
):
    table = _table(shop_brand, [TableEntrySpec(monthly_price=catalogue["flat"][0])])

    with pytest.raises(StorefrontError) as refused:
        pricing_table_update(table=table, changes={"livemode": False})
    assert _refusal(refused) == "field_frozen"
    with pytest.raises(StorefrontError):
        pricing_table_update(table=table, changes={}, entries=[TableEntrySpec(monthly_price=catalogue["flat"][1])])

    assert list(table.entries.values_list("monthly_price_id", flat=True)) == [catalogue["flat"][0].pk]


# -- payment links ----------------------------------------------------------------------------


def test_a_link_is_created_with_its_items_and_bounds(shop_brand, catalogue):
    link = payment_link_create(
        brand=shop_brand,
        livemode=True,
        name="Team",
        mode="subscription",
        items=[LinkItemSpec(price=catalogue["seat"][0], quantity=5, adjustable_minimum=1, adjustable_maximum=50)],
        trial_period_days=7,
    )

    assert link.public_id.startswith("plink_") and link.active
    item = link.items.get()
    assert (item.quantity, item.adjustable_minimum, item.adjustable_maximum, item.adjustable) == (5, 1, 50, True)


@pytest.mark.parametrize(
    ("mode", "items", "code"),
    [
        ("payment", lambda c, p: [LinkItemSpec(price=c["flat"][0])], "recurring_in_payment"),
        (
            "subscription",
            lambda c, p: [LinkItemSpec(price=p(type=Price.Type.ONE_TIME, cycle=None))],
            "no_recurring_price",
        ),
        (
            "subscription",
            lambda c, p: [LinkItemSpec(price=c["flat"][0]), LinkItemSpec(price=c["seat"][1])],
            "cycles_differ",
        ),
        (
            "subscription",
            lambda c, p: [LinkItemSpec(price=c["flat"][0]), LinkItemSpec(price=p(currency="USD", cycle=MONTH))],
            "currencies_differ",
        ),
        (
            "subscription",
            lambda c, p: [LinkItemSpec(price=c["flat"][0], quantity=5, adjustable_minimum=6, adjustable_maximum=9)],
            "quantity_bounds",
        ),
        ("subscription", lambda c, p: [LinkItemSpec(price=c["flat"][0], adjustable_maximum=9)], "quantity_bounds"),
        ("subscription", lambda c, p: [LinkItemSpec(price=c["flat"][0], quantity=0)], "quantity_bounds"),
        (
            "subscription",
            lambda c, p: [LinkItemSpec(price=p(livemode=False, product__livemode=False, cycle=MONTH))],
            "price_not_found",
        ),
        (
            "subscription",
            lambda c, p: [LinkItemSpec(price=c["flat"][0]), LinkItemSpec(price=c["flat"][0])],
            "price_twice",
        ),
        ("subscription", lambda c, p: [], "item_count"),
        ("weekly", lambda c, p: [LinkItemSpec(price=c["flat"][0])], "invalid_mode"),
    ],
)
def test_a_link_refuses_what_could_not_be_checked_out(shop_brand, catalogue, price_factory, mode, items, code):
    with pytest.raises(StorefrontError) as refused:
        payment_link_create(brand=shop_brand, livemode=True, name="x", mode=mode, items=items(catalogue, price_factory))
    assert _refusal(refused) == code
    assert not PaymentLink.objects.exists()


def test_a_one_time_link_cannot_offer_a_trial(shop_brand, price_factory):
    one_time = price_factory(type=Price.Type.ONE_TIME, cycle=None, unit_amount=Decimal(5000))
    with pytest.raises(StorefrontError) as refused:
        payment_link_create(
            brand=shop_brand,
            livemode=True,
            name="x",
            mode="payment",
            items=[LinkItemSpec(price=one_time)],
            trial_period_days=7,
        )
    assert _refusal(refused) == "trial_without_subscription"


def test_a_link_is_deactivated_and_reactivated_with_events_and_its_prices_stay_fixed(shop_brand, catalogue):
    link = payment_link_create(
        brand=shop_brand, livemode=True, name="x", mode="subscription", items=[LinkItemSpec(price=catalogue["flat"][0])]
    )

    payment_link_deactivate(link=link)
    assert PaymentLink.objects.get(pk=link.pk).active is False
    payment_link_reactivate(link=link)
    assert PaymentLink.objects.get(pk=link.pk).active is True
    with pytest.raises(ValidationError):
        payment_link_update(link=link, changes={"mode": "payment"})

    assert list(DomainEvent.objects.filter(object_id=link.public_id).order_by("pk").values_list("type", flat=True)) == [
        "payment_link.created",
        "payment_link.deactivated",
        "payment_link.activated",
    ]
