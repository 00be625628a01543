"""The console: pricing tables and payment links created, shown and deactivated through the services."""

from __future__ import annotations

import pytest

from billing.storefront.models import PaymentLink, PricingTable
from billing.storefront.services import LinkItemSpec, TableEntrySpec, payment_link_create, pricing_table_create
from config.events.models import DomainEvent
from tests.billing.storefront.conftest import MONTH

pytestmark = pytest.mark.django_db

TABLES = "/admin/storefront/pricingtable/"
LINKS = "/admin/storefront/paymentlink/"


def _table_form(shop_brand, **fields):
    data = {
        "name": "Spring plans",
        "brand": shop_brand.pk,
        "active": "on",
        "button_label": "",
        "trial_period_days": "14",
        "success_url": "",
        "cancel_url": "",
        "embed_origins": "https://shop.example.com",
        "highlighted_entry": "2",
    }
    for slot in range(1, 5):
        data.update({f"entry_{slot}_monthly_price": "", f"entry_{slot}_yearly_price": "", f"entry_{slot}_features": ""})
    data.update(fields)
    return data


def test_add_and_change_pages_render_with_the_share_url_and_embed_snippet(console, shop_brand, catalogue):
    table = pricing_table_create(
        brand=shop_brand, livemode=True, name="Plans", entries=[TableEntrySpec(monthly_price=catalogue["flat"][0])]
    )
    link = payment_link_create(
        brand=shop_brand,
        livemode=True,
        name="Team",
        mode="subscription",
        items=[LinkItemSpec(price=catalogue["seat"][0], quantity=2)],
    )

    pages = {
        url: console.get(url)
        for url in (
            TABLES,
            f"{TABLES}add/",
            f"{TABLES}{table.pk}/change/",
            LINKS,
            f"{LINKS}add/",
            f"{LINKS}{link.pk}/change/",
        )
    }

    assert {url: response.status_code for url, response in pages.items()} == dict.fromkeys(pages, 200)
    table_page = pages[f"{TABLES}{table.pk}/change/"].content.decode()
    assert f"/pricing/{table.public_id}/embed.js" in table_page
    assert f"&lt;tarif-pricing-table data-id=&quot;{table.public_id}&quot;&gt;" in table_page
    link_page = pages[f"{LINKS}{link.pk}/change/"].content.decode()
    assert f"/buy/{link.public_id}/" in link_page and "€8.00 per seat per month" in link_page
    assert "completed purchases" in pages[LINKS].content.decode()


def test_a_table_is_created_from_the_console_through_the_service(console, shop_brand, catalogue):
    flat, seat = catalogue["flat"], catalogue["seat"]
    data = _table_form(
        shop_brand,
        entry_1_monthly_price=flat[0].pk,
        entry_1_yearly_price=flat[1].pk,
        entry_1_features="Email support\nOne project",
        entry_2_monthly_price=seat[0].pk,
    )

    response = console.post(f"{TABLES}add/", data)

    assert response.status_code == 302, response.content.decode()[:3000]
    table = PricingTable.objects.get()
    assert (table.name, table.trial_period_days, table.livemode) == ("Spring plans", 14, True)
    assert [(entry.product_id, entry.features, entry.highlighted) for entry in table.entries.all()] == [
        (flat[0].product_id, ["Email support", "One project"], False),
        (seat[0].product_id, [], True),
    ]
    assert DomainEvent.objects.filter(type="pricing_table.created", acting_user=console.user).exists()


def test_a_refused_table_is_a_form_error_and_nothing_is_saved(console, shop_brand, catalogue):
    data = _table_form(shop_brand, entry_1_monthly_price=catalogue["flat"][1].pk)  # a yearly price as monthly

    response = console.post(f"{TABLES}add/", data)

    assert response.status_code == 200
    assert "does not bill every month" in response.content.decode()
    assert not PricingTable.objects.exists()


def test_changing_the_entries_of_a_table_keeps_its_public_url(console, shop_brand, catalogue):
    table = pricing_table_create(
        brand=shop_brand, livemode=True, name="Plans", entries=[TableEntrySpec(monthly_price=catalogue["flat"][0])]
    )
    data = _table_form(shop_brand, name="Plans", entry_1_monthly_price=catalogue["seat"][0].pk, highlighted_entry="1")

    response = console.post(f"{TABLES}{table.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()[:3000]
    table.refresh_from_db()
    assert [entry.monthly_price_id for entry in table.entries.all()] == [catalogue["seat"][0].pk]
    assert PricingTable.objects.get().public_id == table.public_id


def test_a_link_is_created_then_deactivated_and_reactivated_by_the_actions(console, shop_brand, catalogue):
    data = {
        "name": "Team",
        "brand": shop_brand.pk,
        "mode": "subscription",
        "trial_period_days": "",
        "after_completion_url": "",
        "item_1_price": catalogue["seat"][0].pk,
        "item_1_quantity": "3",
        "item_1_minimum": "1",
        "item_1_maximum": "10",
        **{f"item_{slot}_{name}": "" for slot in (2, 3) for name in ("price", "quantity", "minimum", "maximum")},
    }

    created = console.post(f"{LINKS}add/", data)
    link = PaymentLink.objects.get()
    console.post(LINKS, {"action": "deactivate", "_selected_action": [link.pk]})
    deactivated = PaymentLink.objects.get().active
    console.post(LINKS, {"action": "reactivate", "_selected_action": [link.pk]})

    assert created.status_code == 302, created.content.decode()[:3000]
    assert [(item.quantity, item.adjustable_minimum, item.adjustable_maximum) for item in link.items.all()] == [
        (3, 1, 10)
    ]
    assert deactivated is False and PaymentLink.objects.get().active is True


def test_test_data_and_live_data_never_mix_in_the_console(console, shop_brand, catalogue, price_factory):
    live = payment_link_create(
        brand=shop_brand,
        livemode=True,
        name="Live link",
        mode="subscription",
        items=[LinkItemSpec(price=catalogue["flat"][0])],
    )
    sandbox_price = price_factory(livemode=False, product__livemode=False, cycle=MONTH)
    console.post("/admin/test-data/", {"test_data": "on", "next": "/admin/"})

    listing = console.get(LINKS).content.decode()
    foreign = console.get(f"{LINKS}{live.pk}/change/", follow=True)
    add_form = console.get(f"{LINKS}add/").context["adminform"].form

    assert "Live link" not in listing
    assert foreign.redirect_chain
    offered = set(add_form.fields["item_1_price"].queryset.values_list("pk", flat=True))
    assert sandbox_price.pk in offered and catalogue["flat"][0].pk not in offered
