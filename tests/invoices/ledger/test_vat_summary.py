"""VAT summary and CA3 boxes on a hand-worked month: domestic sales at two rates, a partial
credit note, an EU business (reverse charge), an EU consumer (OSS), sales outside the EU
(services O, goods G); and the cross-check with the issued documents."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from invoices.ledger.vat_summary import vat_summary
from tests.invoices.helpers import ISSUED_AT, issue
from tests.invoices.ledger.accexport_helpers import post_sale

pytestmark = pytest.mark.django_db

MARCH = {"start": date(2026, 3, 1), "end": date(2026, 3, 31)}


@pytest.fixture
def march(brand, customer_factory):
    french = customer_factory(brand=brand, country="FR")
    german = customer_factory(brand=brand, country="DE")
    belgian = customer_factory(brand=brand, country="BE")
    american = customer_factory(brand=brand, country="US")
    day = date(2026, 3, 10)
    post_sale(brand=brand, customer=french, day=day, number="F1", source_id=1,
              lines=[(10000, "S", Decimal("20"), 2000), (2000, "S", Decimal("5.5"), 110)])  # fmt: skip
    post_sale(brand=brand, customer=french, day=day, number="A1", source_id=2,
              lines=[(-1000, "S", Decimal("20"), -200)])  # fmt: skip
    post_sale(brand=brand, customer=german, day=day, number="F2", source_id=3, lines=[(2900, "AE", Decimal(0), 0)])
    post_sale(brand=brand, customer=belgian, day=day, number="F3", source_id=4, lines=[(1000, "S", Decimal("21"), 210)])
    post_sale(brand=brand, customer=american, day=day, number="F4", source_id=5, lines=[(5000, "O", Decimal(0), 0)])
    post_sale(brand=brand, customer=american, day=day, number="F5", source_id=6, lines=[(1000, "G", Decimal(0), 0)])
    # April is outside the period.
    post_sale(brand=brand, customer=french, day=date(2026, 4, 1), number="F6", source_id=7,
              lines=[(99900, "S", Decimal("20"), 19980)])  # fmt: skip
    return brand


def test_rows_by_regime_and_rate_net_the_credit_note(march):
    summary = vat_summary(brand=march, livemode=True, **MARCH)

    rows = {(row.regime, row.category, row.rate): (row.base, row.vat) for row in summary.rows}
    assert rows == {
        ("domestic", "S", Decimal("20")): (9000, 1800),
        ("domestic", "S", Decimal("5.5")): (2000, 110),
        ("oss", "S", Decimal("21")): (1000, 210),
        ("reverse_charge", "AE", Decimal(0)): (2900, 0),
        ("export", "O", Decimal(0)): (5000, 0),
        ("export", "G", Decimal(0)): (1000, 0),
    }
    assert summary.total_vat == 1910


def test_ca3_boxes(march):
    boxes = {box.box: (box.base, box.vat) for box in vat_summary(brand=march, livemode=True, **MARCH).boxes}

    assert boxes["A1"] == (11000, None)  # domestic taxable sales
    assert boxes["08"] == (9000, 1800)  # 20 %
    assert boxes["09"] == (2000, 110)  # 5.5 %
    assert "9B" not in boxes  # no 10 % sale
    assert boxes["E1"] == (1000, None)  # goods exported
    assert boxes["E2"] == (7900, None)  # reverse charge 29.00 + services outside the EU 50.00
    assert boxes["E3"] == (1000, None)  # EU consumer, declared through the OSS
    assert boxes["16"] == (None, 1910)
    assert boxes["28"] == (None, 1910)


def test_test_mode_and_other_brands_are_not_counted(march, brand_factory, customer_factory):
    other = brand_factory(slug="other-brand")
    post_sale(brand=other, customer=customer_factory(brand=other), day=date(2026, 3, 5), number="X1", source_id=50,
              lines=[(5000, "S", Decimal("20"), 1000)])  # fmt: skip
    post_sale(brand=march, customer=customer_factory(brand=march, livemode=False), day=date(2026, 3, 5),
              number="T1", source_id=51, livemode=False, lines=[(7000, "S", Decimal("20"), 1400)])  # fmt: skip

    assert vat_summary(brand=march, livemode=True, **MARCH).total_vat == 1910
    assert vat_summary(brand=march, livemode=False, **MARCH).total_vat == 1400


def test_cross_check_shows_documents_missing_from_the_ledger_then_agrees(brand, customer_factory, tax_rate, settings):
    # given an invoice issued while the ledger was off (so no entry)
    settings.TARIF_LEDGER_ENABLED = False
    customer = customer_factory(brand=brand, country="FR")
    invoice = issue(customer, [10000, 2500])
    settings.TARIF_LEDGER_ENABLED = True
    day = ISSUED_AT.date()
    period = {"start": day.replace(day=1), "end": day.replace(day=28)}

    # then the summary reports the documents' amounts the ledger lacks
    differences = vat_summary(brand=brand, livemode=True, **period).differences
    assert differences and all(d.ledger_base == 0 and d.documents_base for d in differences)

    # when the entry is posted from the document's lines
    groups: dict[tuple[str, Decimal], list[int]] = {}
    for line in invoice.lines.all():
        slot = groups.setdefault((line.tax_category, line.tax_rate), [0, 0])
        slot[0] += line.amount - line.discount_amount
        slot[1] += line.tax_amount
    post_sale(brand=brand, customer=customer, day=day, number=invoice.number, source_id=invoice.pk,
              lines=[(net, cat, rate, vat) for (cat, rate), (net, vat) in groups.items()])  # fmt: skip

    # then there is nothing left to explain
    assert vat_summary(brand=brand, livemode=True, **period).differences == ()
