"""Concurrent imports and reconciliations on PostgreSQL: money is applied once."""

from __future__ import annotations

import pytest

from billing import bank_import
from billing.bank_import import ImportSummary, StatementImportError
from billing.models import BankStatement, BankStatementLine, Payment
from billing.services.reconciliation import bank_statement_reconcile
from customers.models import Customer
from invoices.models import BalanceTransaction, Invoice
from tests.billing.reconciliation.conftest import INVOICE_TOTAL
from tests.billing.services.test_races import errors_of, race, slowed

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def invoices(postgres_only, open_invoice):
    return [open_invoice(customer_id) for customer_id in (4201, 4202, 4203)]


def test_two_concurrent_imports_of_one_statement_pay_once(invoices, import_file, monkeypatch):
    slowed(monkeypatch, bank_import, "bank_line_match")  # the first import holds its locks a while

    results = race(lambda: import_file("camt053_001_02.xml"), lambda: import_file("camt053_001_02.xml"))

    assert all(isinstance(result, ImportSummary) for result in results), results
    assert sorted((result.new_lines, result.skipped_lines) for result in results) == [(0, 4), (4, 0)]
    assert BankStatement.objects.count() == 1 and BankStatementLine.objects.count() == 4
    assert sorted(Payment.objects.values_list("amount", flat=True)) == [2000, INVOICE_TOTAL, INVOICE_TOTAL]
    assert list(BalanceTransaction.objects.filter(kind="overpayment").values_list("amount", flat=True)) == [
        5000 - INVOICE_TOTAL
    ]


def test_two_concurrent_overlapping_statements_never_pay_a_line_twice(invoices, import_file, monkeypatch):
    slowed(monkeypatch, bank_import, "bank_line_match")
    header = "booking_date;amount;currency;remittance_info;statement_id\n"
    shared = "2026-03-05;34,80;EUR;RF21TARIF00004201;{id}\n"
    first = (header + shared.format(id="A") + "2026-03-05;34,80;EUR;RF91TARIF00004202;A\n").encode()
    second = (header + shared.format(id="B") + "2026-03-06;34,80;EUR;RF64TARIF00004203;B\n").encode()

    results = race(lambda: import_file(first, "csv"), lambda: import_file(second, "csv"))

    # The loser either waited and skipped the shared line, or was refused whole (import it again).
    refused = errors_of(results, StatementImportError)
    assert len(refused) + sum(isinstance(result, ImportSummary) for result in results) == 2
    assert Payment.objects.filter(invoice=invoices[0]).count() == 1
    invoices[0].refresh_from_db()
    assert invoices[0].amount_paid == INVOICE_TOTAL
    for data in (first, second):
        import_file(data, "csv")  # a retry of the refused one completes the picture
    assert Invoice.objects.filter(status="paid").count() == 3
    assert Payment.objects.count() == 3


def test_a_retried_reconciliation_running_twice_at_once_pays_once(
    postgres_only, make_customer, open_invoice, import_file
):
    make_customer(id=4201, currency="USD")
    import_file(b"booking_date;amount;currency;remittance_info\n2026-03-05;50,00;EUR;RF21TARIF00004201\n", "csv")
    Customer.objects.filter(pk=4201).update(currency="EUR")  # its invoices are in its currency (issue 13)
    invoice = open_invoice(4201)
    statement = BankStatement.objects.get()

    results = race(
        lambda: bank_statement_reconcile(statement=statement), lambda: bank_statement_reconcile(statement=statement)
    )

    assert not errors_of(results, Exception), results
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert Payment.objects.count() == 1
    assert list(BalanceTransaction.objects.values_list("amount", flat=True)) == [5000 - INVOICE_TOTAL]
