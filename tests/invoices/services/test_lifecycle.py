from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from config.events.models import DomainEvent
from invoices.errors import InvalidInvoiceTransition, InvoiceError, PaymentError
from invoices.services.credit_notes import credit_note_create
from invoices.services.lifecycle import invoice_mark_uncollectible, invoice_record_payment, invoice_void
from invoices.states import ALLOWED_TRANSITIONS, can_transition
from tests.invoices.helpers import ISSUED_AT, create_draft, issue

pytestmark = pytest.mark.django_db

LATER = ISSUED_AT + timedelta(days=3)


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("draft", "open", True),
        ("draft", "paid", True),
        ("draft", "void", False),
        ("open", "paid", True),
        ("open", "void", True),
        ("open", "uncollectible", True),
        ("open", "draft", False),
        ("uncollectible", "paid", True),
        ("uncollectible", "void", True),
        ("paid", "void", False),
        ("paid", "open", False),
        ("void", "open", False),
    ],
)
def test_the_transition_table(current, target, allowed):
    assert can_transition(current, target) is allowed


def test_paid_and_void_are_terminal():
    assert ALLOWED_TRANSITIONS["paid"] == ALLOWED_TRANSITIONS["void"] == frozenset()


def test_partial_payments_until_paid(customer, fr_vat):
    # given an open invoice of 12.00
    invoice = issue(customer, [1000])

    # when 5.00 then 7.00 are received
    invoice = invoice_record_payment(invoice=invoice, amount=500, at=ISSUED_AT)
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == ("open", 500, 700)
    invoice = invoice_record_payment(invoice=invoice, amount=700, at=LATER)

    # then it is paid, on the day of the last payment
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining, invoice.paid_at) == ("paid", 1200, 0, LATER)
    assert list(
        DomainEvent.objects.filter(object_id=str(invoice.pk)).order_by("pk").values_list("type", flat=True)
    ) == ["invoice.finalized", "invoice.payment_recorded", "invoice.paid"]


def test_an_overpayment_is_refused(customer, fr_vat):
    # given an open invoice of 12.00
    invoice = issue(customer, [1000])

    # when 12.01 are recorded
    with pytest.raises(PaymentError, match="exceeds the €12.00 that remain due"), transaction.atomic():
        invoice_record_payment(invoice=invoice, amount=1201, at=ISSUED_AT)

    # then nothing is recorded
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.status) == (0, "open")


@pytest.mark.parametrize("amount", [0, -100, 12.5])
def test_a_payment_is_a_positive_integer(customer, fr_vat, amount):
    invoice = issue(customer, [1000])
    with pytest.raises(PaymentError, match="positive number of minor units"), transaction.atomic():
        invoice_record_payment(invoice=invoice, amount=amount, at=ISSUED_AT)


def test_drafts_and_paid_invoices_take_no_payment(customer, fr_vat):
    # given a draft and a paid invoice
    draft = create_draft(customer)
    paid = invoice_record_payment(invoice=issue(customer, [1000]), amount=1200, at=ISSUED_AT)

    # then neither takes a payment
    for invoice in (draft, paid):
        with pytest.raises(PaymentError, match="takes no payment"), transaction.atomic():
            invoice_record_payment(invoice=invoice, amount=100, at=ISSUED_AT)


def test_an_uncollectible_invoice_can_still_be_paid(customer, fr_vat):
    # given an invoice written off
    invoice = invoice_mark_uncollectible(invoice=issue(customer, [1000]), at=LATER, automatic=True)
    assert invoice.status == "uncollectible"

    # when the customer pays after all
    invoice = invoice_record_payment(invoice=invoice, amount=1200, at=LATER)

    # then it is paid
    assert invoice.status == "paid"


def test_voiding_an_open_invoice(customer, fr_vat, staff):
    # given an open invoice
    invoice = issue(customer, [1000])

    # when it is voided
    invoice = invoice_void(invoice=invoice, at=LATER, acting_user=staff, reason="sent twice")

    # then it is void, keeps its number and amounts, nothing remains due
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number, invoice.total, invoice.amount_remaining) == (
        "void",
        "F-2026-000001",
        1200,
        0,
    )
    assert (invoice.voided_at, invoice.custom_fields["void_reason"]) == (LATER, "sent twice")
    event = DomainEvent.objects.get(type="invoice.voided")
    assert (event.acting_user_id, event.data["reason"]) == (staff.pk, "sent twice")


def test_a_paid_invoice_cannot_be_voided(customer, fr_vat):
    invoice = invoice_record_payment(invoice=issue(customer, [1000]), amount=1200, at=ISSUED_AT)
    with pytest.raises(InvalidInvoiceTransition, match="from 'paid' to 'void'"), transaction.atomic():
        invoice_void(invoice=invoice, at=LATER)


def test_a_partly_paid_invoice_is_credited_not_voided(customer, fr_vat):
    invoice = invoice_record_payment(invoice=issue(customer, [1000]), amount=200, at=ISSUED_AT)
    with pytest.raises(InvoiceError, match=r"received €2\.00 in payments"), transaction.atomic():
        invoice_void(invoice=invoice, at=LATER)


def test_an_invoice_with_a_credit_note_cannot_be_voided(customer, fr_vat):
    invoice = issue(customer, [1000])
    credit_note_create(invoice=invoice, amount=100, reason="other", at=ISSUED_AT)
    with pytest.raises(InvoiceError, match="has credit notes"), transaction.atomic():
        invoice_void(invoice=invoice, at=LATER)


def test_a_draft_cannot_be_voided_or_written_off(customer, fr_vat):
    draft = create_draft(customer)
    with pytest.raises(InvalidInvoiceTransition), transaction.atomic():
        invoice_void(invoice=draft, at=LATER)
    with pytest.raises(InvalidInvoiceTransition), transaction.atomic():
        invoice_mark_uncollectible(invoice=draft, at=LATER, automatic=True)
