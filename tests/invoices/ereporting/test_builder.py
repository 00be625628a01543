"""The e-reporting builder on hand-made periods, to the cent (issue 18 item 7)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from billing.services.payments import payment_record_manual
from invoices.ereporting.errors import EReportingPeriodInvalid
from invoices.ereporting.models import EReportingPeriod
from invoices.ereporting.selectors import (
    ereporting_document_totals,
    ereporting_payment_totals,
    ereporting_transaction_totals,
)
from invoices.ereporting.services import ereporting_period_build
from invoices.services.credit_notes import credit_note_create
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftInvoice, DraftLine
from tests.factories import PriceFactory, ProductFactory
from tests.invoices.ereporting.conftest import IN_PERIOD
from tests.invoices.helpers import issue
from tests.tax_codes import seeded_tax_codes

pytestmark = pytest.mark.django_db

OCTOBER_1 = date(2026, 10, 1)


def _key(row):
    return (row.scope, row.vat_category, row.rate)


def _totals(brand, start=OCTOBER_1, end=date(2026, 10, 10)):
    """The report's totals by scope, VAT category and rate, summed over the days."""
    totals: dict[tuple, tuple[int, int]] = {}
    for row in ereporting_transaction_totals(brand=brand, livemode=True, start=start, end=end):
        taxable, tax = totals.get(_key(row), (0, 0))
        totals[_key(row)] = (taxable + row.taxable_amount, tax + row.tax_amount)
    return totals


def test_b2c_domestic_intra_eu_services_and_export_are_reported_french_b2b_is_not(brand, vat_rates, customer_factory):
    # given four invoices of 5 October: a French consumer, a German business (reverse charge),
    # an American business (export), and a French business with a SIREN (e-invoiced instead)
    consumer = customer_factory(brand=brand, is_business=False)
    german = customer_factory(brand=brand, country="DE", tax_id="DE136695976")
    american = customer_factory(brand=brand, country="US", currency="EUR")
    french_business = customer_factory(brand=brand, siren="303265045")
    issue(consumer, [10000], at=IN_PERIOD)
    issue(german, [5000], at=IN_PERIOD)
    export = issue(american, [3000], at=IN_PERIOD)
    issue(french_business, [70000], at=IN_PERIOD)

    # when the decade's transaction report is built
    totals = _totals(brand)

    # then the consumer is B2C at 20 %, the German buyer international reverse-charged,
    # the export international with no French VAT, and the French business is absent
    export_category = export.tax_breakdown[0]["category"]
    assert totals == {
        ("b2c", "S", "20"): (10000, 2000),
        ("international", "AE", "0"): (5000, 0),
        ("international", export_category, "0"): (3000, 0),
    }
    assert export_category in {"O", "G"}


def test_mixed_rates_credit_note_and_reconciliation_to_the_cent(brand, vat_rates, customer_factory):
    # given a consumer invoice at 20 % and 5.5 %, then a credit note of 1,234.56 € tax included, same decade
    codes = seeded_tax_codes()
    consumer = customer_factory(brand=brand, is_business=False)
    draft = DraftInvoice(
        customer_id=consumer.pk,
        currency="EUR",
        billing_reason="manual",
        lines=(
            DraftLine(
                kind="one_off", description="Plan", amount=123456, price_id=PriceFactory(product=ProductFactory()).pk
            ),
            DraftLine(
                kind="one_off",
                description="Book",
                amount=2099,
                price_id=PriceFactory(product=ProductFactory(tax_code=codes["reduced"])).pk,
            ),
        ),
    )
    invoice = invoice_finalize(invoice=invoice_create(draft=draft, at=IN_PERIOD, customer=consumer), at=IN_PERIOD)
    note = credit_note_create(
        invoice=invoice,
        amount=123456,
        reduce_amount_due=123456,
        reason="order_change",
        at=datetime(2026, 10, 8, 10, tzinfo=UTC),
    )

    # when the report is built
    totals = _totals(brand)
    [documents] = ereporting_document_totals(brand=brand, livemode=True, start=OCTOBER_1, end=date(2026, 10, 10))

    # then each rate nets the credit note off, to the cent, and the report equals the documents' headers
    credited = {(group["category"], group["rate"]): group for group in note.tax_breakdown}
    assert totals[("b2c", "S", "20")] == (
        123456 - credited.get(("S", "20"), {"taxable_amount": 0})["taxable_amount"],
        24691 - credited.get(("S", "20"), {"tax_amount": 0})["tax_amount"],
    )
    assert totals[("b2c", "S", "5.5")][0] == 2099 - credited.get(("S", "5.5"), {"taxable_amount": 0})["taxable_amount"]
    assert sum(taxable for taxable, _ in totals.values()) == documents.net_excluding_tax
    assert sum(tax for _, tax in totals.values()) == documents.net_tax
    assert (documents.invoices, documents.credit_notes) == (1, 1)


def test_payments_are_reported_by_settlement_day_and_rate(brand, vat_rates, customer_factory):
    # given a paid consumer invoice of 12,000.00 € (20 %) settled in two parts in October
    consumer = customer_factory(brand=brand, is_business=False)
    invoice = issue(consumer, [1000000], at=IN_PERIOD, collection_method="send_invoice", days_until_due=30)
    payment_record_manual(
        invoice=invoice, amount=500001, method="bank_transfer", at=datetime(2026, 10, 6, 8, tzinfo=UTC)
    )
    payment_record_manual(
        invoice=invoice, amount=699999, method="bank_transfer", at=datetime(2026, 10, 20, 8, tzinfo=UTC)
    )

    # when the month's payment report is built
    rows = ereporting_payment_totals(brand=brand, livemode=True, start=OCTOBER_1, end=date(2026, 10, 31))

    # then each settlement day reports its amount at 20 %, exactly
    assert [(row.day, row.vat_category, row.rate, row.amount) for row in rows] == [
        (date(2026, 10, 6), "S", "20", 500001),
        (date(2026, 10, 20), "S", "20", 699999),
    ]


def test_goods_and_vat_on_debits_sellers_report_no_payment(brand, vat_rates, customer_factory):
    brand.vat_on_debits = True
    brand.save()
    consumer = customer_factory(brand=brand, is_business=False)
    invoice = issue(consumer, [1000], at=IN_PERIOD, collection_method="send_invoice", days_until_due=30)
    payment_record_manual(invoice=invoice, amount=1200, method="cash", at=datetime(2026, 10, 6, 8, tzinfo=UTC))

    assert ereporting_payment_totals(brand=brand, livemode=True, start=OCTOBER_1, end=date(2026, 10, 31)) == []


def test_other_mode_and_other_brand_documents_are_not_reported(brand, brand_factory, vat_rates, customer_factory):
    other_brand = brand_factory(slug="other-ereport", invoice_number_format="OT-{year}-{seq:06d}")
    issue(customer_factory(brand=other_brand, is_business=False), [1000], at=IN_PERIOD)
    issue(customer_factory(brand=brand, is_business=False, livemode=False), [2000], at=IN_PERIOD)

    assert _totals(brand) == {}


def test_build_refuses_dates_that_are_not_a_period_of_the_regime(brand):
    with pytest.raises(EReportingPeriodInvalid) as refused:
        ereporting_period_build(brand=brand, livemode=True, kind="transactions", start=date(2026, 10, 2))

    assert refused.value.http_status == 400
    assert not EReportingPeriod.objects.exists()
