from __future__ import annotations

from decimal import Decimal

import pytest


@pytest.fixture(autouse=True)
def _ledger_on(settings):
    """The ledger posts in these tests (on by default; kept explicit should an environment turn it off)."""
    settings.TARIF_LEDGER_ENABLED = True


@pytest.fixture
def brand(brand_factory):
    return brand_factory(
        slug="tarif-ledger",
        invoice_number_format="FL-{year}-{seq:06d}",
        credit_note_number_format="AVL-{year}-{seq:06d}",
    )


@pytest.fixture
def fr_vat(tax_rate_factory):
    return tax_rate_factory(country="FR", percentage=Decimal("20"))


@pytest.fixture
def de_vat(tax_rate_factory):
    return tax_rate_factory(country="DE", name="MwSt", percentage=Decimal("19"))
