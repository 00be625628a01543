"""Matching statement lines with open invoices: exact, partial, over-payment, unknown, currency."""

from __future__ import annotations

import pytest

from billing.models import BankStatement, BankStatementLine, Payment
from billing.services.reconciliation import (
    ReconciliationError,
    bank_line_credit_customer,
    bank_line_ignore,
    bank_line_match_invoice,
    bank_line_reopen,
    bank_statement_reconcile,
    line_identify,
)
from config.events.models import DomainEvent
from customers.models import Customer
from invoices.models import BalanceTransaction, Invoice
from invoices.selectors import customer_balance
from tests.billing.reconciliation.conftest import INVOICE_TOTAL

pytestmark = pytest.mark.django_db
Status = BankStatementLine.Status

CSV_HEADER = "booking_date;value_date;amount;currency;debtor_name;remittance_info;entry_reference\n"


def csv_statement(*rows: str) -> bytes:
    return (CSV_HEADER + "\n".join(rows) + "\n").encode()


def line_with(entry_reference: str) -> BankStatementLine:
    return BankStatementLine.objects.get(entry_reference=entry_reference)


def test_camt_02_statement_pays_exactly_partially_and_over(open_invoice, import_file):
    exact, partial, over = open_invoice(4201), open_invoice(4202), open_invoice(4203)

    summary = import_file("camt053_001_02.xml")

    # four booked credits: the debit and the pending entry are not money received
    assert (summary.new_lines, summary.skipped_lines) == (4, 0)
    statement = BankStatement.objects.get()
    assert (statement.account, statement.statement_id, statement.source_format) == (
        "IBAN-0189",
        "STMT-2026-03-05",
        "camt053",
    )
    assert str(statement.period_start) == str(statement.period_end) == "2026-03-05"

    exact.refresh_from_db()
    assert exact.status == Invoice.Status.PAID
    assert line_with("2026030500001").status == Status.MATCHED

    partial.refresh_from_db()
    assert (partial.status, partial.amount_paid, partial.amount_remaining) == ("open", 2000, INVOICE_TOTAL - 2000)
    assert line_with("2026030500002").status == Status.PARTIALLY_MATCHED

    over.refresh_from_db()
    overpaid = line_with("2026030500003")
    assert over.status == Invoice.Status.PAID
    assert (overpaid.status, overpaid.amount_credited) == (Status.MATCHED, 5000 - INVOICE_TOTAL)
    assert customer_balance(customer_id=4203, currency="EUR") == 5000 - INVOICE_TOTAL
    assert overpaid.balance_transaction.kind == BalanceTransaction.Kind.OVERPAYMENT

    unknown = line_with("2026030500004")
    assert unknown.status == Status.UNMATCHED and unknown.customer is None
    assert "No payment reference" in unknown.status_reason

    payments = Payment.objects.filter(method=Payment.Method.BANK_TRANSFER, status=Payment.Status.SUCCEEDED)
    assert sorted(payments.values_list("amount", flat=True)) == [2000, INVOICE_TOTAL, INVOICE_TOTAL]
    assert all(payment.idempotency_key.startswith("bank:") for payment in payments)
    assert set(overpaid.payments.values_list("invoice_id", flat=True)) == {over.pk}
    assert DomainEvent.objects.filter(type="bank_statement.imported").count() == 1
    assert DomainEvent.objects.filter(type="bank_transfer.matched").count() == 3
    assert DomainEvent.objects.filter(type="invoice.paid").count() == 2


def test_camt_08_statement_with_a_batch_booking_and_a_mistyped_reference(open_invoice, import_file):
    invoices = [open_invoice(customer_id) for customer_id in (4201, 4202, 4203, 4204, 4205)]
    assert invoices[4].number == "F-2026-000005"  # quoted in the file's second transfer

    summary = import_file("camt053_001_08.xml")

    assert summary.new_lines == 3  # the batched entry gives one line per transfer
    by_reference = line_with("EB2026030600011-A"), line_with("EB2026030600011-B")
    assert [line.status for line in by_reference] == [Status.MATCHED, Status.MATCHED]
    assert by_reference[1].customer_id == 4205 and by_reference[1].debtor_name == "Studio Lumière"
    for invoice in (invoices[3], invoices[4]):
        invoice.refresh_from_db()
        assert invoice.status == Invoice.Status.PAID
    mistyped = line_with("EB2026030600012")
    assert mistyped.status == Status.UNMATCHED
    assert "RF99TARIF00004201" in mistyped.status_reason and "check digits" in mistyped.status_reason
    invoices[0].refresh_from_db()
    assert invoices[0].amount_paid == 0  # the mistyped reference paid nobody


def test_reference_inside_noisy_text_is_found_whatever_the_spacing_and_case(open_invoice):
    open_invoice(4202)
    texts = [
        "VIR SEPA RECU /DE MARTIN /MOTIF rf91 tarif 0000 4202 ACOMPTE /REF 2026-03",
        "/ROC/RF91TARIF00004202//EREF/NOTPROVIDED",
        "Paiement facture mars RF91-TARIF-0000-4202 merci!",
    ]
    for text in texts:
        assert line_identify(text=text).customer_id == 4202, text
    wrong_digits = line_identify(text="RF92 TARIF 0000 4202")
    assert wrong_digits.customer_id is None and "check digits" in wrong_digits.reason
    nobody = line_identify(text="RF10TARIF00004205")  # valid, but no such customer
    assert nobody.customer_id is None and "no customer" in nobody.reason


def test_over_payment_pays_the_oldest_invoices_first_then_credits_the_rest(open_invoice, import_file, now):
    first = open_invoice(4201)
    now.shift(86400)
    second = open_invoice(4201)

    import_file(csv_statement("2026-03-10;;80,00;EUR;DUPONT;RF21TARIF00004201;X1"), "csv")

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == Invoice.Status.PAID
    line = line_with("X1")
    assert line.amount_credited == 8000 - 2 * INVOICE_TOTAL
    assert customer_balance(customer_id=4201, currency="EUR") == 8000 - 2 * INVOICE_TOTAL
    assert line.payments.count() == 2


def test_a_quoted_invoice_number_is_paid_before_older_ones(open_invoice, import_file, now):
    older = open_invoice(4201)
    now.shift(86400)
    quoted = open_invoice(4201)

    import_file(csv_statement(f"2026-03-10;;34.80;EUR;DUPONT;Reglement {quoted.number} RF21TARIF00004201;X2"), "csv")

    quoted.refresh_from_db()
    older.refresh_from_db()
    assert quoted.status == Invoice.Status.PAID and older.amount_paid == 0


def test_a_line_in_another_currency_stays_unmatched_with_the_reason(open_invoice, import_file):
    invoice = open_invoice(4201)

    import_file(csv_statement("2026-03-10;;34.80;USD;DUPONT;RF21TARIF00004201;X3"), "csv")

    line = line_with("X3")
    assert line.status == Status.UNMATCHED
    assert line.customer_id == 4201  # who paid is known, only the currency is wrong
    assert "USD" in line.status_reason and "EUR" in line.status_reason
    invoice.refresh_from_db()
    assert invoice.amount_paid == 0 and not Payment.objects.exists()
    with pytest.raises(ReconciliationError, match="USD"):
        bank_line_match_invoice(line=line, invoice=invoice)


def test_a_known_customer_without_open_invoices_gets_the_money_as_credit(make_customer, import_file):
    make_customer(id=4201)

    import_file(csv_statement("2026-03-10;;10,00;EUR;DUPONT;avance RF21TARIF00004201;X4"), "csv")

    line = line_with("X4")
    assert (line.status, line.amount_credited) == (Status.MATCHED, 1000)
    assert customer_balance(customer_id=4201, currency="EUR") == 1000
    assert not Payment.objects.exists()


def test_unknown_reference_then_manual_match_to_an_invoice(open_invoice, import_file, staff):
    invoice = open_invoice(4201)
    import_file(csv_statement("2026-03-10;;40,00;EUR;M. DUPONT;virement du mois;X5"), "csv")
    line = line_with("X5")
    assert line.status == Status.UNMATCHED

    matched = bank_line_match_invoice(line=line, invoice=invoice, acting_user=staff)

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert (matched.status, matched.matched_by, matched.amount_credited) == (
        Status.MANUALLY_MATCHED,
        staff,
        4000 - INVOICE_TOTAL,
    )
    assert customer_balance(customer_id=4201, currency="EUR") == 4000 - INVOICE_TOTAL
    with pytest.raises(ReconciliationError, match="already"):
        bank_line_match_invoice(line=matched, invoice=invoice, acting_user=staff)
    assert Payment.objects.count() == 1


def test_manual_credit_to_a_customer_and_ignore_with_a_reason(make_customer, import_file, staff):
    customer = make_customer(id=4201)
    import_file(
        csv_statement("2026-03-10;;25,00;EUR;DUPONT;sans ref;X6", "2026-03-10;;3,10;EUR;BANQUE;INTERETS CREDITEURS;X7"),
        "csv",
    )

    credited = bank_line_credit_customer(line=line_with("X6"), customer=customer, acting_user=staff)
    assert (credited.status, credited.amount_credited) == (Status.MANUALLY_MATCHED, 2500)
    assert customer_balance(customer_id=4201, currency="EUR") == 2500

    with pytest.raises(ReconciliationError, match="why"):
        bank_line_ignore(line=line_with("X7"), reason="  ", acting_user=staff)
    ignored = bank_line_ignore(line=line_with("X7"), reason="Bank interest", acting_user=staff)
    assert (ignored.status, ignored.status_reason) == (Status.IGNORED, "Bank interest")
    with pytest.raises(ReconciliationError):
        bank_line_credit_customer(line=ignored, customer=customer, acting_user=staff)
    reopened = bank_line_reopen(line=ignored, acting_user=staff)
    assert reopened.status == Status.UNMATCHED


def test_reconciling_again_matches_lines_whose_invoice_came_later_and_never_pays_twice(
    make_customer, open_invoice, import_file
):
    make_customer(id=4201, currency="USD")  # no EUR invoice yet: a EUR transfer waits
    import_file(csv_statement("2026-03-10;;34,80;EUR;DUPONT;RF21TARIF00004201;X8"), "csv")
    statement = BankStatement.objects.get()
    assert line_with("X8").status == Status.UNMATCHED

    # Later the customer moves to EUR (a customer's invoices are in its currency, issue 13) and is invoiced.
    Customer.objects.filter(pk=4201).update(currency="EUR")
    invoice = open_invoice(4201)
    counts = bank_statement_reconcile(statement=statement)
    again = bank_statement_reconcile(statement=statement)

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert counts == again and counts[Status.MATCHED] == 1
    assert Payment.objects.count() == 1
