"""Functional-currency amounts (issue 19 item 7)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from invoices.ledger.errors import MissingExchangeRate
from invoices.ledger.fx import functional_amount
from invoices.ledger.models import ExchangeRate, Role
from invoices.ledger.services import AccountKey, EntryDraft, entries_post

pytestmark = pytest.mark.django_db


def _usd_draft(brand, day):
    draft = EntryDraft(
        brand_id=brand.pk,
        livemode=True,
        journal="VT",
        day=day,
        label="USD sale",
        source_type="test",
        source_id=day.toordinal(),
        movement="sale",
        currency="USD",
    )
    # 100.00 USD = 92.17 EUR, but each half converts to 46.08: one cent of rounding residue
    draft.add(AccountKey(Role.RECEIVABLE), 10000, side="debit")
    draft.add(AccountKey(Role.REVENUE_SERVICES), 5000, side="credit")
    draft.add(AccountKey(Role.REVENUE_SERVICES), 5000, side="credit")
    return draft


def test_functional_amount_uses_the_latest_rate_of_the_week():
    ExchangeRate.objects.create(currency="USD", date=date(2026, 3, 6), rate=Decimal("1.0850"), source="ecb")
    ExchangeRate.objects.create(currency="JPY", date=date(2026, 3, 6), rate=Decimal("160.00"), source="ecb")

    assert functional_amount(amount=10850, currency="USD", on=date(2026, 3, 8)) == (10000, Decimal("0.9216589862"))
    assert functional_amount(amount=1600, currency="JPY", on=date(2026, 3, 6))[0] == 1000  # 0-digit currency
    assert functional_amount(amount=500, currency="EUR", on=date(2026, 3, 6)) == (500, Decimal(1))
    with pytest.raises(MissingExchangeRate, match="USD"):
        functional_amount(amount=100, currency="USD", on=date(2026, 3, 20))


def test_a_foreign_currency_entry_balances_in_the_functional_currency(brand):
    ExchangeRate.objects.create(currency="USD", date=date(2026, 3, 6), rate=Decimal("1.0850"), source="ecb")

    [entry] = entries_post(drafts=[_usd_draft(brand, date(2026, 3, 6))])

    lines = sorted(entry.lines.values_list("functional_debit", "functional_credit"))
    assert lines == [(0, 4608), (0, 4609), (9217, 0)]  # the receivable keeps its direct conversion
    assert entry.rate == Decimal("0.9216589862")


def test_a_missing_rate_posts_a_flagged_entry_unless_rates_are_required(brand, settings):
    [entry] = entries_post(drafts=[_usd_draft(brand, date(2026, 4, 1))])
    assert entry.rate == 0 and not entry.lines.exclude(functional_debit=0, functional_credit=0).exists()

    settings.TARIF_LEDGER_REQUIRE_RATES = True
    with pytest.raises(MissingExchangeRate):
        entries_post(drafts=[_usd_draft(brand, date(2026, 4, 2))])
