"""Bank account ↔ bank statements ↔ payments ↔ ledger (issue 19 item 6): each difference is
listed (unmatched statement line, payment without statement line, amount mismatch, payment
not posted), a clean period reconciles, and a planted difference is caught."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.urls import reverse

from billing.models import BankStatement, BankStatementLine
from billing.services.payments import payment_record_manual
from billing.services.reconciliation import bank_line_match_invoice
from invoices.ledger.reconciliation import BankDifferenceKind, bank_reconciliation
from tests.invoices.helpers import issue

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 12, 10, tzinfo=UTC)
MARCH = (date(2026, 3, 1), date(2026, 3, 31))
_fingerprints = itertools.count(1)


@pytest.fixture
def statement():
    return BankStatement.objects.create(
        account="IBAN-0189", statement_id="2026-03", source_format="camt053", file_checksum="0" * 64, imported_at=DAY
    )


def _line(statement, amount, **extra):
    number = next(_fingerprints)
    return BankStatementLine.objects.create(
        statement=statement,
        sequence=number,
        fingerprint=f"{number:064d}",
        booking_date=DAY.date(),
        amount=amount,
        currency="EUR",
        remittance_info=extra.pop("remittance_info", "?"),
        **extra,
    )


def _matched(statement, invoice):
    """A statement line for the whole invoice, matched by finance (the payment is posted on 512)."""
    line = _line(statement, invoice.amount_remaining)
    with time_machine.travel(DAY, tick=False):
        return bank_line_match_invoice(line=line, invoice=invoice)


def _report(brand, livemode=True):
    return bank_reconciliation(brand=brand, livemode=livemode, start=MARCH[0], end=MARCH[1])


def test_a_clean_period_reconciles(customer_factory, brand, fr_vat, statement):
    customer = customer_factory(brand=brand)
    _matched(statement, issue(customer, [10000], collection_method="send_invoice"))

    report = _report(brand)

    assert report.reconciled and report.differences == ()
    assert report.ledger_receipts == report.statement_receipts == 12000


def test_each_kind_of_difference_is_listed(customer_factory, brand, fr_vat, statement, settings):
    customer = customer_factory(brand=brand)
    _matched(statement, issue(customer, [10000], collection_method="send_invoice"))
    # a transfer that reached the bank but was matched to nothing
    stray = _line(statement, 4500)
    # a cheque recorded in Tarif that no statement line shows
    cheque = payment_record_manual(
        invoice=issue(customer, [5000], collection_method="send_invoice"), amount=6000, method="cheque", at=DAY
    )
    # a line matched while the ledger was off: its payment never reached the bank account
    settings.TARIF_LEDGER_ENABLED = False
    unposted = _matched(statement, issue(customer, [2000], collection_method="send_invoice"))
    settings.TARIF_LEDGER_ENABLED = True

    report = _report(brand)

    found = {(item.kind, item.statement_line_id, item.payment_id, item.difference) for item in report.differences}
    assert found == {
        (BankDifferenceKind.UNMATCHED_LINE, stray.pk, None, 4500),
        (BankDifferenceKind.PAYMENT_WITHOUT_LINE, None, cheque.pk, -6000),
        (BankDifferenceKind.NOT_POSTED, unposted.pk, unposted.payments.get().pk, 2400),
    }
    # the bank account got 120.00 + 60.00; the statement shows 120.00 + 45.00 + 24.00
    assert (report.ledger_receipts, report.statement_receipts) == (18000, 18900)
    assert not report.reconciled


def test_negative_control_a_planted_amount_difference_is_caught(customer_factory, brand, fr_vat, statement):
    # given a reconciled period...
    customer = customer_factory(brand=brand)
    line = _matched(statement, issue(customer, [10000], collection_method="send_invoice"))
    assert _report(brand).reconciled

    # ...when the statement line's amount is not what its payment says (a mistyped import)
    BankStatementLine.objects.filter(pk=line.pk).update(amount=12100)

    # then the report shows the line, its payment and the 1.00 difference
    [difference] = _report(brand).differences
    assert (difference.kind, difference.statement_line_id, difference.difference) == (
        BankDifferenceKind.AMOUNT_MISMATCH,
        line.pk,
        100,
    )
    assert difference.payment_id == line.payments.get().pk


def test_other_brands_and_test_mode_do_not_see_the_lines(customer_factory, brand, brand_factory, fr_vat, statement):
    other = brand_factory(slug="other-brand")
    _matched(statement, issue(customer_factory(brand=brand), [10000], collection_method="send_invoice"))

    assert _report(other).differences == () and _report(other).statement_receipts == 0
    assert _report(brand, livemode=False).statement_receipts == 0


def test_console_page_lists_differences_with_links(console, customer_factory, brand, fr_vat, statement):
    customer = customer_factory(brand=brand)
    _matched(statement, issue(customer, [10000], collection_method="send_invoice"))
    stray = _line(statement, 4500)

    html = console.get(
        f"{reverse('accounting_reconciliation')}?brand={brand.pk}&start=2026-03-01&end=2026-03-31"
    ).content.decode()

    assert 'class="tarif-difference bank-difference-unmatched_line"' in html
    assert reverse("admin:billing_bankstatementline_change", args=[stray.pk]) in html
    assert "45,00" in html or "45.00" in html  # through the formatting helper
