from __future__ import annotations

from decimal import Decimal

import pytest


@pytest.fixture
def brand(brand_factory):
    """The brand of the `customer` fixture, with the formats the expected numbers use."""
    return brand_factory(
        slug="tarif-services",
        invoice_number_format="F-{year}-{seq:06d}",
        credit_note_number_format="AV-{year}-{seq:06d}",
    )


@pytest.fixture
def fr_vat(tax_rate_factory):
    return tax_rate_factory(country="FR", percentage=Decimal("20"))


@pytest.fixture
def de_vat(tax_rate_factory):
    return tax_rate_factory(country="DE", name="MwSt", percentage=Decimal("19"))
