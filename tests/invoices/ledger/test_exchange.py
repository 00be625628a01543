"""Exchange gains and losses on foreign-currency receivables (issue 19 item 7), hand-worked.

Rates are ECB-style (1 EUR = x USD). The invoice of 120.00 USD (100.00 + 20 % VAT) is booked
on 10 March at 1.10: 120.00 / 1.10 = 109.09 EUR on 411.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from billing.services.payments import payment_record_manual
from billing.services.refunds import refund_request
from invoices.ledger.exports import fec_export
from invoices.ledger.fec import fec_check, fec_read
from invoices.ledger.models import ExchangeRate, JournalEntry, JournalLine
from invoices.services.credit_notes import credit_note_create
from invoices.services.lifecycle import invoice_mark_uncollectible, invoice_void
from tests.invoices.helpers import ISSUED_AT, issue

pytestmark = pytest.mark.django_db

PAID_AT = ISSUED_AT + timedelta(days=2)  # 12 March: 1.05
LATE_AT = datetime(2026, 3, 20, 12, tzinfo=UTC)  # 20 March: 1.20


@pytest.fixture(autouse=True)
def _rates():
    for day, rate in ((date(2026, 3, 10), "1.10"), (date(2026, 3, 12), "1.05"), (date(2026, 3, 20), "1.20")):
        ExchangeRate.objects.create(currency="USD", date=day, rate=Decimal(rate), source="ecb")


def functional(source_type: str, source_id: int, movement: str) -> list[tuple[str, int, int, int, int]]:
    """(account, debit, credit, functional debit, functional credit) of one movement's entry."""
    entry = JournalEntry.objects.get(source_type=source_type, source_id=source_id, movement=movement)
    return sorted(entry.lines.values_list("account__code", "debit", "credit", "functional_debit", "functional_credit"))


def functional_balance(brand, code: str) -> int:
    lines = JournalLine.objects.filter(entry__brand=brand, account__code=code)
    return sum(line.functional_debit - line.functional_credit for line in lines)


def _usd_invoice(customer_factory, brand):
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [10000], currency="USD", collection_method="send_invoice")
    assert functional("invoice", invoice.pk, "invoice_finalized") == [
        ("411", 12000, 0, 10909, 0),
        ("445712", 0, 2000, 0, 1818),
        ("706", 0, 10000, 0, 9091),
    ]
    return invoice


def test_payment_at_a_stronger_dollar_books_an_exchange_gain(customer_factory, brand, fr_vat):
    invoice = _usd_invoice(customer_factory, brand)

    # when 120.00 USD arrive on 12 March at 1.05 (114.29 EUR)
    payment = payment_record_manual(invoice=invoice, amount=12000, method="bank_transfer", at=PAID_AT)

    # then 411 is settled at its historical 109.09, the bank gets 114.29, and 5.20 EUR is a gain (766)
    assert functional("payment", payment.pk, "payment_succeeded") == [
        ("411", 0, 12000, 0, 10909),
        ("512", 12000, 0, 11429, 0),
        ("766", 0, 0, 0, 520),
    ]
    assert functional_balance(brand, "411") == 0


def test_partial_payments_gain_then_loss_and_411_clears_to_the_cent(customer_factory, brand, fr_vat):
    invoice = _usd_invoice(customer_factory, brand)

    # when half is paid at 1.05: 57.14 EUR in, 411 relieved of 109.09 - round(54.545) = 54.54
    first = payment_record_manual(invoice=invoice, amount=6000, method="bank_transfer", at=PAID_AT)
    assert functional("payment", first.pk, "payment_succeeded") == [
        ("411", 0, 6000, 0, 5454),
        ("512", 6000, 0, 5714, 0),
        ("766", 0, 0, 0, 260),
    ]
    assert functional_balance(brand, "411") == 5455  # the open half at its historical rate

    # and the other half at 1.20: 50.00 EUR in for 54.55 on 411, a loss of 4.55 (666)
    second = payment_record_manual(invoice=invoice, amount=6000, method="bank_transfer", at=LATE_AT)
    assert functional("payment", second.pk, "payment_succeeded") == [
        ("411", 0, 6000, 0, 5455),
        ("512", 6000, 0, 5000, 0),
        ("666", 0, 0, 455, 0),
    ]
    assert functional_balance(brand, "411") == 0


def test_refund_reverses_at_the_refund_day_rate(customer_factory, brand, fr_vat, staff_factory):
    invoice = _usd_invoice(customer_factory, brand)
    payment = payment_record_manual(invoice=invoice, amount=12000, method="bank_transfer", at=PAID_AT)

    # when 24.00 USD is refunded on 20 March (1.20: 20.00 EUR leave the bank)
    with time_machine.travel(LATE_AT, tick=False):
        refund = refund_request(
            payment=payment, amount=2400, reason="other", requested_by=staff_factory(), otp_verified_at=None
        )
    refund.refresh_from_db()

    # then its credit note cancels revenue and VAT at the invoice's rate (1.10) against 411...
    credit_note_entry = JournalEntry.objects.get(source_type="credit_note", source_id=refund.credit_note_id)
    assert credit_note_entry.rate == JournalEntry.objects.get(source_id=invoice.pk, source_type="invoice").rate
    assert functional("credit_note", refund.credit_note_id, "credit_note_issued") == [
        ("411", 0, 2400, 0, 2182),
        ("445712", 400, 0, 364, 0),
        ("706", 2000, 0, 1818, 0),
    ]
    # ...and the refund brings 411 back at that rate (21.82) while 20.00 leaves: a gain of 1.82
    assert functional("refund", refund.pk, "refund_executed") == [
        ("411", 2400, 0, 2182, 0),
        ("512", 0, 2400, 0, 2000),
        ("766", 0, 0, 0, 182),
    ]
    assert functional_balance(brand, "411") == 0
    assert functional_balance(brand, "766") == -(520 + 182)


def test_foreign_credit_note_then_payment_of_the_rest(customer_factory, brand, fr_vat):
    invoice = _usd_invoice(customer_factory, brand)

    # when a credit note of 60.00 USD reduces what is due (booked at the invoice's 1.10)
    credit_note = credit_note_create(invoice=invoice, amount=6000, reason="other", at=PAID_AT)
    assert functional("credit_note", credit_note.pk, "credit_note_issued") == [
        ("411", 0, 6000, 0, 5454),
        ("445712", 1000, 0, 909, 0),
        ("706", 5000, 0, 4545, 0),
    ]
    invoice.refresh_from_db()

    # and the remaining 60.00 USD is paid at 1.20
    payment = payment_record_manual(invoice=invoice, amount=invoice.amount_remaining, method="cheque", at=LATE_AT)

    # then 411 clears at the historical rate and only the payment carries an exchange difference
    assert functional("payment", payment.pk, "payment_succeeded") == [
        ("411", 0, 6000, 0, 5455),
        ("512", 6000, 0, 5000, 0),
        ("666", 0, 0, 455, 0),
    ]
    assert functional_balance(brand, "411") == 0


def test_write_off_of_a_foreign_receivable_is_at_its_historical_rate(customer_factory, brand, fr_vat):
    invoice = _usd_invoice(customer_factory, brand)

    invoice_mark_uncollectible(invoice=invoice, at=LATE_AT, automatic=True)

    # no exchange difference: the loss is the receivable's carrying amount (VAT relief included)
    assert functional("invoice", invoice.pk, "invoice_uncollectible") == [
        ("411", 0, 12000, 0, 10909),
        ("445712", 2000, 0, 1818, 0),
        ("654", 10000, 0, 9091, 0),
    ]
    assert functional_balance(brand, "411") == 0 and functional_balance(brand, "445712") == 0


def test_void_of_a_foreign_invoice_mirrors_its_functional_amounts(customer_factory, brand, fr_vat):
    invoice = _usd_invoice(customer_factory, brand)

    # voided on a day with another rate: the reversal keeps the original's amounts, no difference
    invoice_void(invoice=invoice, at=LATE_AT)

    assert functional("invoice", invoice.pk, "invoice_finalized_reversed") == [
        ("411", 0, 12000, 0, 10909),
        ("445712", 2000, 0, 1818, 0),
        ("706", 10000, 0, 9091, 0),
    ]
    assert not JournalLine.objects.filter(entry__brand=brand, account__code__in=["666", "766"]).exists()


def test_payment_without_a_rate_of_the_day_posts_a_flagged_entry_without_a_difference(customer_factory, brand, fr_vat):
    invoice = _usd_invoice(customer_factory, brand)

    # 1 May: no rate in the last 7 days
    payment = payment_record_manual(
        invoice=invoice, amount=12000, method="bank_transfer", at=datetime(2026, 5, 1, tzinfo=UTC)
    )

    entry = JournalEntry.objects.get(source_type="payment", source_id=payment.pk)
    assert entry.rate == 0
    assert functional("payment", payment.pk, "payment_succeeded") == [
        ("411", 0, 12000, 0, 0),
        ("512", 12000, 0, 0, 0),
    ]


def test_functional_currency_payment_has_no_exchange_line(customer_factory, brand, fr_vat):
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [10000], collection_method="send_invoice")

    payment = payment_record_manual(invoice=invoice, amount=12000, method="bank_transfer", at=PAID_AT)

    assert functional("payment", payment.pk, "payment_succeeded") == [
        ("411", 0, 12000, 0, 12000),
        ("512", 12000, 0, 12000, 0),
    ]


def test_fec_carries_the_dollar_amounts_and_leaves_the_exchange_line_without_a_currency(
    customer_factory, brand, fr_vat
):
    # given a USD invoice (1.10) paid on another day (1.05): a gain of 5.20 EUR
    invoice = _usd_invoice(customer_factory, brand)
    payment_record_manual(invoice=invoice, amount=12000, method="bank_transfer", at=PAID_AT)

    # when the year's FEC is written
    name, chunks = fec_export(brand=brand, livemode=True, fiscal_year=2026)
    data = b"".join(chunks)

    # then it passes every check and reads back
    assert fec_check(data, fiscal_year_start=date(2026, 1, 1), fiscal_year_end=date(2026, 12, 31), filename=name) == []
    rows = {(row.journal_code, row.account_number): row for row in fec_read(data)}
    # each line in dollars carries its dollar amount (signed: debit positive) and USD, next to its euros
    assert [
        (code, rows[code].debit, rows[code].credit, rows[code].foreign_amount, rows[code].foreign_currency)
        for code in [("VT", "411"), ("VT", "706"), ("VT", "445712"), ("BQ", "512"), ("BQ", "411")]
    ] == [
        (("VT", "411"), 10909, 0, 12000, "USD"),
        (("VT", "706"), 0, 9091, -10000, "USD"),
        (("VT", "445712"), 0, 1818, -2000, "USD"),
        (("BQ", "512"), 11429, 0, 12000, "USD"),
        (("BQ", "411"), 0, 10909, -12000, "USD"),
    ]
    # the exchange gain exists only in euros: no Montantdevise, no Idevise (not "0,00 USD")
    gain = rows[("BQ", "766")]
    assert (gain.credit, gain.foreign_amount, gain.foreign_currency) == (520, None, "")
    gain_fields = next(line for line in data.decode("iso-8859-15").split("\r\n") if "\t766\t" in line).split("\t")
    assert (gain_fields[11], gain_fields[12], gain_fields[16], gain_fields[17]) == ("0,00", "5,20", "", "")
