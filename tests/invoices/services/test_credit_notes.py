from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from config.events.models import DomainEvent
from invoices.errors import CreditNoteError
from invoices.models import BalanceTransaction, CreditNote
from invoices.selectors import credit_note_content_hash_matches, customer_balance
from invoices.services.credit_notes import (
    CreditLineInput,
    credit_note_create,
    credit_note_preview,
    credit_note_refund_check,
)
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.services.lifecycle import invoice_record_payment, invoice_void
from invoices.types import DraftInvoice, DraftLine
from tests.invoices.helpers import ISSUED_AT, create_draft, issue

pytestmark = pytest.mark.django_db

LATER = ISSUED_AT + timedelta(days=5)


def paid_invoice(customer, amounts=(1000, 500)):
    invoice = issue(customer, amounts)
    return invoice_record_payment(invoice=invoice, amount=invoice.amount_due, at=ISSUED_AT)


def test_crediting_a_line_of_a_paid_invoice_to_the_customer_balance(customer, fr_vat):
    # given a paid invoice: 10.00 + 5.00 + 20 % VAT = 18.00
    invoice = paid_invoice(customer)
    second_line = invoice.lines.order_by("position")[1]

    # when the 5.00 line is credited to the balance
    note = credit_note_create(
        invoice=invoice,
        lines=[CreditLineInput(invoice_line_id=second_line.pk, amount=500)],
        credit_to_balance=600,
        reason="product_unsatisfactory",
        at=LATER,
    )

    # then the credit note is 5.00 + 1.00 VAT, numbered in its own series, and 6.00 is credit
    assert (note.number, note.subtotal, note.tax_total, note.total) == ("AV-2026-000001", 500, 100, 600)
    assert (note.credited_to_balance, note.reduced_amount_due, note.refunded) == (600, 0, 0)
    assert list(note.lines.values_list("invoice_line_id", "amount", "tax_amount", "tax_category")) == [
        (second_line.pk, 500, 100, "S")
    ]
    assert customer_balance(customer_id=customer.pk, currency="EUR") == 600
    assert BalanceTransaction.objects.get(credit_note=note).kind == "credit_note"
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_reducing_the_amount_due_of_an_open_invoice_until_paid(customer, fr_vat):
    # given an open invoice of 18.00
    invoice = issue(customer, [1000, 500])
    first_line = invoice.lines.order_by("position")[0]

    # when 2.50 of the first line are credited against what is due
    credit_note_create(
        invoice=invoice,
        lines=[CreditLineInput(invoice_line_id=first_line.pk, amount=250)],
        reduce_amount_due=300,
        reason="order_change",
        at=LATER,
    )

    # then 15.00 remain due
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_remaining, invoice.amount_due) == ("open", 1500, 1800)

    # and when the remaining 15.00 are credited (default allocation: against what is due)
    note = credit_note_create(invoice=invoice, amount=1500, reason="order_change", at=LATER)

    # then VAT is taken out of the 15.00 (2.50), nothing remains, and the invoice is paid
    assert (note.subtotal, note.tax_total, note.total, note.reduced_amount_due) == (1250, 250, 1500, 1500)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_remaining, invoice.paid_at) == ("paid", 0, LATER)
    assert DomainEvent.objects.filter(type="invoice.paid", object_id=str(invoice.pk)).exists()


def test_a_refund_share_is_only_issued_by_the_refunds_service(customer, fr_vat):
    # given a paid invoice of 12.00
    invoice = paid_invoice(customer, [1000])

    # when 6.00 are credited as a refund directly, without a refund that paid the money back
    with pytest.raises(CreditNoteError, match="A refund moves money"), transaction.atomic():
        credit_note_create(invoice=invoice, amount=600, refund=600, reason="duplicate", at=LATER)

    # then nothing is issued (billing.services.refunds issues it once the gateway paid; see
    # tests/billing/payments/test_refund_paths.py)
    assert not CreditNote.objects.exists()


def test_cannot_refund_more_than_was_paid(customer, fr_vat):
    # given an open invoice of 12.00 with 2.00 paid
    invoice = invoice_record_payment(invoice=issue(customer, [1000]), amount=200, at=ISSUED_AT)

    # when the refunds service checks that a 6.00 refund can have its credit note
    with pytest.raises(CreditNoteError, match="€2.00 of invoice .* was paid and not refunded"):
        with transaction.atomic():
            credit_note_refund_check(invoice=invoice, amount=600, reason="duplicate")


def test_the_allocation_must_add_up_to_the_total(customer, fr_vat):
    invoice = issue(customer, [1000])
    with pytest.raises(CreditNoteError, match=r"totals €6.00 .* = €2.00; they must add up"), transaction.atomic():
        credit_note_create(
            invoice=invoice, amount=600, reduce_amount_due=100, credit_to_balance=100, reason="other", at=LATER
        )


def test_cannot_reduce_more_than_remains_due(customer, fr_vat):
    invoice = paid_invoice(customer, [1000])
    with pytest.raises(CreditNoteError, match="Only €0.00 remain due"), transaction.atomic():
        credit_note_create(invoice=invoice, amount=600, reduce_amount_due=600, reason="other", at=LATER)


def test_cannot_credit_more_than_the_invoice(customer, fr_vat):
    # given an invoice of 12.00 already credited 10.00
    invoice = issue(customer, [1000])
    credit_note_create(invoice=invoice, amount=1000, reason="other", at=LATER)

    # when 3.00 more are credited
    with pytest.raises(CreditNoteError, match="has €2.00 left to credit"), transaction.atomic():
        credit_note_create(invoice=invoice, amount=300, credit_to_balance=300, reason="other", at=LATER)

    # then 2.00 still can be
    assert credit_note_create(invoice=invoice, amount=200, reason="other", at=LATER).total == 200


def test_cannot_credit_more_than_a_line(customer, fr_vat):
    # given a line of 10.00 already credited 6.00
    invoice = issue(customer, [1000])
    line = invoice.lines.get()
    credit_note_create(
        invoice=invoice, lines=[CreditLineInput(invoice_line_id=line.pk, amount=600)], reason="other", at=LATER
    )

    # when 5.00 more of it are credited
    too_much = r"has €4.00 \(tax excluded\) left to credit; €5.00 is too much"
    with pytest.raises(CreditNoteError, match=too_much), transaction.atomic():
        credit_note_create(
            invoice=invoice, lines=[CreditLineInput(invoice_line_id=line.pk, amount=500)], reason="other", at=LATER
        )


def test_drafts_and_void_invoices_take_no_credit_note(customer, fr_vat):
    draft = create_draft(customer)
    with (
        pytest.raises(CreditNoteError, match=r"is draft: only open or paid .*\(edit the draft instead\)"),
        transaction.atomic(),
    ):
        credit_note_create(invoice=draft, amount=100, reason="other", at=LATER)
    void = invoice_void(invoice=issue(customer), at=LATER)
    with pytest.raises(CreditNoteError, match="is void"), transaction.atomic():
        credit_note_create(invoice=void, amount=100, reason="other", at=LATER)


def test_tax_on_credited_lines_is_rounded_once_per_group(customer, fr_vat):
    # given an invoice of two lines, 9.99 and 3.33 (+20 %)
    invoice = issue(customer, [999, 333])
    first, second = invoice.lines.order_by("position")

    # when both are credited in one credit note
    preview = credit_note_preview(
        invoice=invoice,
        lines=[
            CreditLineInput(invoice_line_id=first.pk, amount=999),
            CreditLineInput(invoice_line_id=second.pk, amount=333),
        ],
    )

    # then the tax is 20 % of 13.32 = 2.664 -> 2.66, shared 2.00 / 0.66
    assert (preview.subtotal, preview.tax_total, preview.total) == (1332, 266, 1598)
    assert [line.tax_amount for line in preview.lines] == [200, 66]


def test_a_credited_amount_is_shared_over_the_tax_groups(customer, fr_vat):
    # given an invoice with a 10.00 line excluding VAT and a 12.00 line including VAT (24.00 in all)
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency="EUR",
        billing_reason="manual",
        lines=(
            DraftLine(kind="one_off", description="Excl.", amount=1000),
            DraftLine(kind="one_off", description="Incl.", amount=1200, tax_inclusive=True),
        ),
    )
    invoice = invoice_finalize(invoice=invoice_create(draft=draft, at=ISSUED_AT, customer=customer), at=ISSUED_AT)
    assert invoice.total == 2400

    # when 6.01 are credited
    note = credit_note_create(invoice=invoice, amount=601, reason="other", at=LATER)

    # then 3.01 and 3.00 are taken from the two 12.00 groups, with 1.00 of VAT out of 6.01
    assert sorted(note.lines.values_list("amount", "tax_amount")) == [(250, 50), (251, 50)]
    assert (note.subtotal, note.tax_total, note.total) == (501, 100, 601)


def test_the_credit_note_snapshot_refers_to_the_invoice_and_keeps_its_vat_mention(
    customer_factory, brand, fr_vat, de_vat
):
    # given a reverse-charged invoice to a German company
    customer = customer_factory(brand=brand, country="DE", tax_id="DE136695976")
    invoice = issue(customer, [1000])

    # when it is credited
    note = credit_note_create(invoice=invoice, amount=400, reason="other", at=LATER)

    # then the credit note names the invoice, keeps the reverse charge, and hashes its content
    texts = {mention["key"]: mention["text"] for mention in note.issued_snapshot["mentions"]}
    assert texts["credit_note_for"] == "Avoir se rapportant à la facture n° F-2026-000001 du 10 mars 2026"
    assert texts["reverse_charge"].startswith("Autoliquidation")
    assert (note.tax_total, note.lines.get().tax_category) == (0, "AE")
    note.refresh_from_db()
    assert credit_note_content_hash_matches(credit_note=note)


def test_credit_either_lines_or_an_amount(customer, fr_vat):
    invoice = issue(customer)
    line = invoice.lines.get()
    with pytest.raises(CreditNoteError, match="not both"), transaction.atomic():
        credit_note_create(
            invoice=invoice,
            lines=[CreditLineInput(invoice_line_id=line.pk, amount=100)],
            amount=120,
            reason="other",
            at=LATER,
        )
    with pytest.raises(CreditNoteError, match="Unknown credit note reason"), transaction.atomic():
        credit_note_create(invoice=invoice, amount=120, reason="because", at=LATER)
