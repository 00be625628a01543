"""Two staff members save the same pricing table at once (PostgreSQL): one set of products wins whole."""

from __future__ import annotations

import time
from typing import Any

import pytest

from billing.storefront import services
from billing.storefront.models import PricingTable
from billing.storefront.services import TableEntrySpec, pricing_table_create, pricing_table_update
from tests.billing.services.test_races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_saves_of_one_table_never_mix_their_products(postgres_only, shop_brand, catalogue, monkeypatch):
    flat, seat, tiered = catalogue["flat"], catalogue["seat"], catalogue["tiered"]
    table = pricing_table_create(
        brand=shop_brand, livemode=True, name="Plans", entries=[TableEntrySpec(monthly_price=flat[0])]
    )
    write_entries = services._write_entries

    def slow_write(target: PricingTable, entries: Any) -> None:
        write_entries(target, entries)
        time.sleep(0.3)  # hold the transaction open after writing: a second writer must wait, not interleave

    monkeypatch.setattr(services, "_write_entries", slow_write)
    first = [TableEntrySpec(monthly_price=seat[0]), TableEntrySpec(monthly_price=tiered[0])]
    second = [TableEntrySpec(yearly_price=flat[1])]

    def save(name: str, entries: list[TableEntrySpec]) -> PricingTable:
        stored = PricingTable.objects.get(pk=table.pk)
        return pricing_table_update(table=stored, changes={"name": name}, entries=entries)

    results = race(lambda: save("A", first), lambda: save("B", second))

    assert all(isinstance(result, PricingTable) for result in results), results
    saved = PricingTable.objects.get(pk=table.pk)
    rows = [(entry.monthly_price_id, entry.yearly_price_id) for entry in saved.entries.order_by("position")]
    expected = {
        "A": [(seat[0].pk, None), (tiered[0].pk, None)],
        "B": [(None, flat[1].pk)],
    }
    assert rows == expected[saved.name]
