"""A price is immutable once used; bad prices are refused with a clear message."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing.models import Price
from billing.selectors import price_amount_for
from billing.services.catalog import PriceInUse, price_update
from billing.services.subscriptions import ItemSpec, subscription_create

pytestmark = pytest.mark.django_db


def test_a_used_price_keeps_its_terms_but_can_be_renamed_and_archived(customer, price_factory, tax_rate):
    price = price_factory(unit_amount=Decimal(2900))
    subscription_create(customer=customer, items=[ItemSpec(price=price)])

    with pytest.raises(PriceInUse, match="archive it and create a new one"):
        price_update(price=price, changes={"unit_amount": Decimal(3900)})
    price_update(price=price, changes={"nickname": "Pro (2025)", "active": False})

    price.refresh_from_db()
    assert price.unit_amount == Decimal(2900)
    assert (price.nickname, price.active) == ("Pro (2025)", False)


def test_an_unused_price_can_still_change(price_factory):
    price = price_factory(unit_amount=Decimal(2900))

    price_update(price=price, changes={"unit_amount": Decimal(3900)})

    price.refresh_from_db()
    assert price.unit_amount == Decimal(3900)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cycle": None}, "cycle", "needs a billing cycle"),
        ({"cycle": {"kind": "interval", "unit": "fortnight"}}, "cycle", "unit"),
        ({"type": "one_time"}, "cycle", "has no billing cycle"),
        ({"unit_amount": None}, "unit_amount", "needs a unit amount"),
        ({"scheme": "tiered_graduated", "tiers": [{"up_to": 5, "unit_amount": "100"}]}, "tiers", "tier"),
        ({"scheme": "tiered_volume", "tiers": [{"up_to": "many", "unit_amount": "1"}]}, "tiers", "not a number"),
        ({"usage_type": "metered"}, "meter", "needs a usage meter"),
        ({"currency": "EURO"}, "currency", "ISO 4217"),
    ],
)
def test_bad_prices_are_refused_field_by_field(price_factory, fields, field, message):
    price = price_factory.build(**fields)

    with pytest.raises(ValidationError) as error:
        price.full_clean()

    assert message.lower() in " ".join(error.value.message_dict[field]).lower()


@pytest.mark.parametrize(
    ("fields", "quantity", "expected"),
    [
        ({"scheme": "per_unit", "unit_amount": Decimal(1500)}, 3, 4500),
        ({"scheme": "package", "unit_amount": Decimal(1000), "package_size": 10}, 21, 3000),
        (
            {
                "scheme": "tiered_graduated",
                "unit_amount": None,
                "tiers": [{"up_to": 5, "unit_amount": "1500"}, {"up_to": None, "unit_amount": "1200"}],
            },
            8,
            11100,
        ),
        (
            {
                "scheme": "tiered_volume",
                "unit_amount": None,
                "tiers": [{"up_to": 5, "unit_amount": "1500"}, {"up_to": None, "unit_amount": "1200"}],
            },
            8,
            9600,
        ),
    ],
)
def test_each_billing_scheme_prices_a_quantity(price_factory, fields, quantity, expected):
    price = price_factory(**fields)

    assert price_amount_for(price=price, quantity=quantity) == expected
    assert isinstance(Price.objects.get(pk=price.pk).tiers, list)
