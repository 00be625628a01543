"""Write-off VAT relief (article 272 CGI) and recovered bad debts, hand-worked (issue 19)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.services.payments import payment_record_manual
from invoices.ledger.models import LedgerSettings
from invoices.ledger.services import chart_load
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.services.lifecycle import invoice_mark_uncollectible
from invoices.types import DraftInvoice, DraftLine
from tests.factories import PriceFactory, ProductFactory
from tests.invoices.helpers import ISSUED_AT, issue
from tests.invoices.ledger.helpers import balances, lines_of
from tests.tax_codes import seeded_tax_codes

pytestmark = pytest.mark.django_db

LATER = ISSUED_AT + timedelta(days=2)


def _mixed_rates_invoice(customer):
    """100.00 at 20 % and 20.00 at 5.5 %: 141.10 with 20.00 + 1.10 VAT."""
    reduced = PriceFactory(product=ProductFactory(tax_code=seeded_tax_codes()["reduced"]))
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency="EUR",
        billing_reason="manual",
        collection_method="send_invoice",
        lines=(
            DraftLine(kind="one_off", description="Setup", amount=10000),
            DraftLine(kind="one_off", description="Books", amount=2000, price_id=reduced.pk),
        ),
    )
    return invoice_finalize(invoice=invoice_create(draft=draft, at=ISSUED_AT, customer=customer), at=ISSUED_AT)


def test_partial_payment_then_write_off_recovers_the_vat_of_the_unpaid_part_per_rate(customer_factory, brand, fr_vat):
    customer = customer_factory(brand=brand)
    invoice = _mixed_rates_invoice(customer)
    payment_record_manual(invoice=invoice, amount=4110, method="bank_transfer", at=LATER)
    invoice.refresh_from_db()

    # when the remaining 100.00 is written off
    invoice_mark_uncollectible(invoice=invoice, at=LATER, automatic=True)

    # then the VAT inside 100.00 of 141.10, per rate: 20.00 x 100/141.10 = 14.17; 1.10 x 100/141.10 = 0.78
    assert lines_of("invoice", invoice.pk, "invoice_uncollectible") == [
        ("411", 0, 10000),
        ("445712", 1417, 0),
        ("445713", 78, 0),
        ("654", 8505, 0),
    ]
    assert balances(brand)["445712"] == -(2000 - 1417)

    # and two recoveries of 50.00 make that VAT due again, pro rata, to the cent in total
    first = payment_record_manual(invoice=invoice, amount=5000, method="cheque", at=LATER + timedelta(days=30))
    assert lines_of("payment", first.pk, "payment_succeeded") == [
        ("445712", 0, 709),
        ("445713", 0, 39),
        ("512", 5000, 0),
        ("7714", 0, 4252),
    ]
    second = payment_record_manual(invoice=invoice, amount=5000, method="cheque", at=LATER + timedelta(days=31))
    assert lines_of("payment", second.pk, "payment_succeeded") == [
        ("445712", 0, 708),
        ("445713", 0, 39),
        ("512", 5000, 0),
        ("7714", 0, 4253),
    ]
    ledger = balances(brand)
    assert (ledger["445712"], ledger["445713"]) == (-2000, -110)  # all the invoice's VAT is due again
    assert ledger["654"] + ledger["7714"] == 8505 - 8505


def test_relief_off_for_the_brand_writes_the_whole_amount_off(customer_factory, brand, fr_vat):
    LedgerSettings.objects.create(brand=brand, write_off_vat_relief=False)
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [10000], collection_method="send_invoice")

    invoice_mark_uncollectible(invoice=invoice, at=LATER, automatic=True)

    assert lines_of("invoice", invoice.pk, "invoice_uncollectible") == [("411", 0, 12000), ("654", 12000, 0)]
    # a recovery then goes to recovered bad debts whole, no VAT line
    payment = payment_record_manual(invoice=invoice, amount=12000, method="cheque", at=LATER + timedelta(days=1))
    assert lines_of("payment", payment.pk, "payment_succeeded") == [("512", 12000, 0), ("7714", 0, 12000)]


def test_ifrs_chart_default_is_off_and_uses_its_own_accounts(customer_factory, brand, fr_vat):
    LedgerSettings.objects.create(brand=brand, chart="ifrs")
    chart_load(brand=brand, chart="ifrs")
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [10000], collection_method="send_invoice")

    invoice_mark_uncollectible(invoice=invoice, at=LATER, automatic=True)
    payment = payment_record_manual(invoice=invoice, amount=12000, method="cheque", at=LATER + timedelta(days=1))

    assert lines_of("invoice", invoice.pk, "invoice_uncollectible") == [("1100", 0, 12000), ("6200", 12000, 0)]
    assert lines_of("payment", payment.pk, "payment_succeeded") == [("1010", 12000, 0), ("4910", 0, 12000)]


def test_a_brand_loaded_before_the_recovered_role_existed_gets_it_on_first_use(customer_factory, brand, fr_vat):
    chart_load(brand=brand)
    brand.ledger_mappings.filter(role="bad_debts_recovered").delete()
    brand.ledger_accounts.filter(code="7714").delete()
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [10000], collection_method="send_invoice")
    invoice_mark_uncollectible(invoice=invoice, at=LATER, automatic=True)

    payment = payment_record_manual(invoice=invoice, amount=12000, method="cheque", at=LATER + timedelta(days=1))

    assert ("7714", 0, 10000) in lines_of("payment", payment.pk, "payment_succeeded")
