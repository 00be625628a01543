"""E-reporting in euros (documents in another currency at the ledger's rate of their day, a
missing rate stops the build and needs attention) and refunds netted in the payment report."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from invoices.einvoicing.models import PlatformAccount
from invoices.ereporting.errors import EReportingExchangeRateMissing
from invoices.ereporting.flows import NAMESPACE
from invoices.ereporting.models import EReportingPeriod
from invoices.ereporting.selectors import (
    ereporting_document_totals,
    ereporting_payment_totals,
    ereporting_periods_needing_attention,
)
from invoices.ereporting.services import ereporting_close_due, ereporting_period_build
from invoices.ledger.models import ExchangeRate
from tests.invoices.ereporting.documents import BUYERS, Doc, write_documents, write_payment, write_refund

pytestmark = pytest.mark.django_db

NS = {"r": NAMESPACE}
START = date(2026, 10, 1)
DAY = date(2026, 10, 3)


@pytest.fixture
def customers(brand, customer_factory):
    return {
        kind: customer_factory(brand=brand, country=buyer["country"], is_business=buyer["is_business"])
        for kind, buyer in BUYERS.items()
    }


def _usd_sale(brand, customers, *, prefix="USD"):
    # a consumer invoice of 125.00 USD excluding tax at 20 %, on 3 October
    return write_documents(
        brand=brand,
        customers=customers,
        docs=[Doc(buyer="b2c", day=DAY, groups=(("S", "20", 12500),), currency="USD")],
        prefix=prefix,
    )


def test_a_dollar_invoice_is_reported_in_euros_at_the_rate_of_its_day(brand, customers):
    # given one euro buys 1.25 USD on the invoice's day (and another rate the day before: not used)
    ExchangeRate.objects.create(base="EUR", currency="USD", date=DAY, rate=Decimal("1.25"))
    ExchangeRate.objects.create(base="EUR", currency="USD", date=date(2026, 10, 2), rate=Decimal("1.10"))
    _usd_sale(brand, customers)

    # when the decade is built
    period = ereporting_period_build(brand=brand, livemode=True, kind="transactions", start=START)

    # then the flow reports 100.00 EUR and 20.00 EUR of VAT, with the dollar amounts and the rate
    [row] = period.totals["rows"]
    assert (row["currency"], row["taxable_amount"], row["taxable_amount_eur"], row["tax_amount_eur"]) == (
        "USD",
        12500,
        10000,
        2000,
    )
    group = etree.fromstring(bytes(period.content)).find("r:TransactionsReport/r:Transactions", NS)
    assert group.findtext("r:TaxExclusiveAmount", namespaces=NS) == "100.00"
    assert group.find("r:TaxExclusiveAmount", NS).get("currencyID") == "EUR"
    assert group.findtext("r:TaxTotal", namespaces=NS) == "20.00"
    assert group.findtext("r:CurrencyCode", namespaces=NS) == "USD"
    assert group.findtext("r:ExchangeRate", namespaces=NS) == "0.8"
    assert group.findtext("r:InvoiceCurrencyTaxExclusiveAmount", namespaces=NS) == "125.00"
    assert group.findtext("r:TaxSubtotal/r:TaxAmount", namespaces=NS) == "20.00"


def test_a_missing_rate_stops_the_build_instead_of_reporting_a_wrong_total(brand, customers):
    # given a dollar invoice and no USD rate within a week of its day
    ExchangeRate.objects.create(base="EUR", currency="USD", date=date(2026, 9, 20), rate=Decimal("1.25"))
    _usd_sale(brand, customers)

    # when the decade is built, then it is refused with a clear message and nothing is built
    with pytest.raises(EReportingExchangeRateMissing) as refused:
        ereporting_period_build(brand=brand, livemode=True, kind="transactions", start=START)
    assert "USD" in refused.value.message_text() and "2026-10-03" in refused.value.message_text()
    assert refused.value.http_status == 422
    assert not EReportingPeriod.objects.filter(brand=brand, state=EReportingPeriod.State.BUILT).exists()


def test_the_sweeper_holds_a_period_without_rate_for_attention_then_builds_it(brand, customers, settings, console):
    # given a brand with a platform account, a dollar invoice in the first decade of October, no rate
    settings.TARIF_EREPORTING_SINCE = "2026-10-01"
    PlatformAccount.objects.create(brand=brand, livemode=True, name="PA", base_url="http://127.0.0.1:9")
    _usd_sale(brand, customers)

    # when the closed periods are built
    ereporting_close_due(today=date(2026, 10, 12))

    # then the decade waits as a draft with the reason, listed in "needs attention" on the console home
    held = EReportingPeriod.objects.get(brand=brand, kind="transactions", start=START)
    assert held.state == EReportingPeriod.State.DRAFT and "USD" in held.reason
    assert list(ereporting_periods_needing_attention(livemode=True)) == [held]
    home = console.get("/admin/").content.decode()
    assert "E-reporting periods rejected or not built" in home and "No USD/EUR exchange rate" in home

    # and once the rate is imported the next sweep builds it (and it needs no attention any more)
    ExchangeRate.objects.create(base="EUR", currency="USD", date=DAY, rate=Decimal("1.25"))
    ereporting_close_due(today=date(2026, 10, 12))
    held.refresh_from_db()
    assert (held.state, held.reason) == (EReportingPeriod.State.BUILT, "")
    assert held.totals["rows"][0]["taxable_amount_eur"] == 10000
    assert list(ereporting_periods_needing_attention(livemode=True)) == []


def test_refunds_are_negative_in_the_payment_report_of_their_own_day(brand, customers):
    # given a consumer invoice of 120.00 EUR paid on 2 October, half refunded on 5 October
    [invoice] = write_documents(
        brand=brand,
        customers=customers,
        docs=[Doc(buyer="b2c", day=date(2026, 10, 1), groups=(("S", "20", 10000),))],
        prefix="RF",
    )
    payment = write_payment(invoice=invoice, amount=12000, day=date(2026, 10, 2))
    write_refund(payment=payment, amount=6000, day=date(2026, 10, 5))

    # when the month's payment data is read and built
    rows = ereporting_payment_totals(brand=brand, livemode=True, start=START, end=date(2026, 10, 31))
    period = ereporting_period_build(brand=brand, livemode=True, kind="payments", start=START)

    # then the payment counts on its day and the refund is taken off on its own
    assert [(row.day, row.amount, row.payments, row.refunds) for row in rows] == [
        (date(2026, 10, 2), 12000, 1, 0),
        (date(2026, 10, 5), -6000, 0, 1),
    ]
    [totals] = ereporting_document_totals(brand=brand, livemode=True, start=START, end=date(2026, 10, 31))
    assert (totals.payments_amount, totals.refunds_amount, totals.net_collected) == (12000, 6000, 6000)
    amounts = [
        element.text for element in etree.fromstring(bytes(period.content)).iterfind(".//r:SubTotals/r:Amount", NS)
    ]
    assert amounts == ["120.00", "-60.00"]
