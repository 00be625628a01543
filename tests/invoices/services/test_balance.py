from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models import Sum

from config.events.models import DomainEvent
from invoices.errors import InsufficientBalance, InvoiceError
from invoices.models import BalanceTransaction, Invoice
from invoices.selectors import customer_balance
from invoices.services.balance import balance_adjust
from invoices.services.lifecycle import invoice_void
from tests.invoices.helpers import ISSUED_AT, issue

pytestmark = pytest.mark.django_db


def balance(customer) -> int:
    return customer_balance(customer_id=customer.pk, currency="EUR")


def credit(customer, amount: int) -> None:
    balance_adjust(customer=customer, currency="EUR", amount=amount, description="Goodwill", at=ISSUED_AT)


def assert_ledger_reconciles(customer) -> None:
    """Every balance movement tied to an invoice matches what the invoice says it used."""
    for invoice in Invoice.objects.filter(customer=customer).exclude(status="draft"):
        applied = BalanceTransaction.objects.filter(invoice=invoice, kind="applied_to_invoice").aggregate(
            total=Sum("amount")
        )["total"]
        returned = BalanceTransaction.objects.filter(invoice=invoice, kind="invoice_voided").aggregate(
            total=Sum("amount")
        )["total"]
        assert -(applied or 0) == invoice.starting_balance_applied
        assert (returned or 0) == (invoice.starting_balance_applied if invoice.status == "void" else 0)
        assert invoice.amount_due == invoice.total - invoice.starting_balance_applied >= 0
    assert balance(customer) >= 0


def test_credit_pays_the_next_invoice_entirely(customer, fr_vat):
    # given 50.00 of credit
    credit(customer, 5000)

    # when an invoice of 12.00 is issued
    invoice = issue(customer, [1000])

    # then the credit pays it: nothing due, paid, 38.00 of credit left
    assert (invoice.total, invoice.starting_balance_applied, invoice.amount_due) == (1200, 1200, 0)
    assert invoice.status == "paid"
    assert balance(customer) == 3800
    assert_ledger_reconciles(customer)


def test_credit_pays_part_of_the_next_invoice(customer, fr_vat):
    # given 5.00 of credit
    credit(customer, 500)

    # when an invoice of 12.00 is issued
    invoice = issue(customer, [1000])

    # then 5.00 is used and 7.00 remains due
    assert (invoice.starting_balance_applied, invoice.amount_due, invoice.amount_remaining) == (500, 700, 700)
    assert invoice.status == "open"
    assert balance(customer) == 0
    assert_ledger_reconciles(customer)


def test_a_negative_invoice_becomes_credit_for_the_next_one(customer, fr_vat):
    # given an invoice of -30.00 + VAT (unused time refunded as credit)
    refund = issue(customer, [-3000])

    # then nothing is due on it and its 36.00 are credited to the balance
    assert (refund.total, refund.amount_due, refund.starting_balance_applied, refund.status) == (
        -3600,
        0,
        -3600,
        "paid",
    )
    assert balance(customer) == 3600

    # and the next invoice of 12.00 uses that credit
    following = issue(customer, [1000])
    assert (following.starting_balance_applied, following.amount_due) == (1200, 0)
    assert balance(customer) == 2400
    assert_ledger_reconciles(customer)


def test_voiding_returns_the_credit_the_invoice_used(customer, fr_vat):
    # given an invoice partly paid by 5.00 of credit
    credit(customer, 500)
    invoice = issue(customer, [1000])
    assert balance(customer) == 0

    # when it is voided
    invoice_void(invoice=invoice, at=ISSUED_AT, reason="order cancelled")

    # then the 5.00 are back on the balance
    assert balance(customer) == 500
    assert BalanceTransaction.objects.filter(invoice=invoice).values_list("kind", "amount").order_by("pk")[::1] == [
        ("applied_to_invoice", -500),
        ("invoice_voided", 500),
    ]
    assert_ledger_reconciles(customer)


def test_credit_is_kept_per_currency(customer_factory, brand, fr_vat):
    # given a customer with credit in USD only
    customer = customer_factory(brand=brand)
    balance_adjust(customer=customer, currency="USD", amount=1000, description="USD credit", at=ISSUED_AT)

    # when invoiced in EUR
    invoice = issue(customer, [1000])

    # then the USD credit is not used
    assert invoice.starting_balance_applied == 0
    assert customer_balance(customer_id=customer.pk, currency="USD") == 1000


def test_a_manual_debit_cannot_make_the_balance_negative(customer, fr_vat):
    # given 10.00 of credit
    credit(customer, 1000)

    # when 15.00 are debited
    with pytest.raises(InsufficientBalance, match="holds 1000 EUR of credit"), transaction.atomic():
        balance_adjust(customer=customer, currency="EUR", amount=-1500, description="Correction", at=ISSUED_AT)

    # then the balance is untouched; a 10.00 debit is fine
    assert balance(customer) == 1000
    balance_adjust(customer=customer, currency="EUR", amount=-1000, description="Correction", at=ISSUED_AT)
    assert balance(customer) == 0


def test_an_adjustment_needs_a_reason_and_an_amount(customer):
    with pytest.raises(InvoiceError, match="Say why"), transaction.atomic():
        balance_adjust(customer=customer, currency="EUR", amount=100, description=" ", at=ISSUED_AT)
    with pytest.raises(InvoiceError, match="non-zero"), transaction.atomic():
        balance_adjust(customer=customer, currency="EUR", amount=0, description="Nothing", at=ISSUED_AT)
    with pytest.raises(InvoiceError, match="not a known ISO 4217"), transaction.atomic():
        balance_adjust(customer=customer, currency="EUX", amount=100, description="Typo", at=ISSUED_AT)


def test_an_adjustment_is_recorded_as_an_event(customer, staff):
    # when staff credit a customer
    entry = balance_adjust(
        customer=customer, currency="EUR", amount=2500, description="Outage", at=ISSUED_AT, acting_user=staff
    )

    # then the ledger row and an event say so
    assert (entry.kind, entry.amount, entry.description) == ("adjustment", 2500, "Outage")
    event = DomainEvent.objects.get(type="customer.balance_transaction.created")
    assert (event.acting_user_id, event.data["balance"]) == (staff.pk, 2500)
