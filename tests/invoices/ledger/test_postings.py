"""Hand-worked journal entries for each money movement (issue 19), accounts and amounts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.models import Payment
from billing.payments.gateway import ChargeResult
from billing.services.payments import payment_record_manual, payment_record_outcome
from billing.services.refunds import refund_request
from invoices.ledger.models import JournalEntry
from invoices.ledger.services import ledger_entries_validate
from invoices.services.credit_notes import credit_note_create
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.services.lifecycle import invoice_mark_uncollectible, invoice_void
from invoices.types import DraftInvoice, DraftLine
from tests.factories import PriceFactory, ProductFactory
from tests.invoices.helpers import ISSUED_AT, issue
from tests.invoices.ledger.helpers import balances, lines_of
from tests.tax_codes import seeded_tax_codes

pytestmark = pytest.mark.django_db

LATER = ISSUED_AT + timedelta(days=2)


def _pending_payment(invoice, *, gateway="stripe", method="card", attempt=1):
    return Payment.objects.create(
        invoice=invoice,
        customer=invoice.customer,
        method=method,
        gateway=gateway,
        amount=invoice.amount_remaining,
        currency=invoice.currency,
        attempt=attempt,
        idempotency_key=f"invoice:{invoice.pk}:attempt:{attempt}",
        attempted_at=LATER,
    )


def test_invoice_with_mixed_vat_rates(customer_factory, brand, fr_vat):
    # given a French customer invoiced 100.00 at 20 % and 20.00 at 5.5 % (the reduced tax code)
    codes = seeded_tax_codes()
    customer = customer_factory(brand=brand)
    reduced = PriceFactory(product=ProductFactory(tax_code=codes["reduced"]))
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency="EUR",
        billing_reason="manual",
        lines=(
            DraftLine(kind="one_off", description="Setup", amount=10000),
            DraftLine(kind="one_off", description="Books", amount=2000, price_id=reduced.pk),
        ),
    )

    # when it is finalized
    invoice = invoice_finalize(invoice=invoice_create(draft=draft, at=ISSUED_AT, customer=customer), at=ISSUED_AT)

    # then one sales entry: D 411 141.10 / C 706 100.00 + 20.00 / C 445712 20.00 / C 445713 1.10
    assert invoice.total == 14110
    assert lines_of("invoice", invoice.pk, "invoice_finalized") == [
        ("411", 14110, 0),
        ("445712", 0, 2000),
        ("445713", 0, 110),
        ("706", 0, 2000),
        ("706", 0, 10000),
    ]
    entry = JournalEntry.objects.get(source_id=invoice.pk, source_type="invoice")
    assert (entry.journal, entry.fiscal_year, entry.number, entry.date.isoformat()) == ("VT", 2026, None, "2026-03-10")
    assert (entry.document_number, entry.customer_id, entry.currency) == (invoice.number, customer.pk, "EUR")
    assert entry.lines.filter(account__code="445713").get().tax_rate == 5.5


def test_reverse_charge_invoice_has_no_vat_line(customer_factory, brand, fr_vat, de_vat):
    # given a German business with a valid VAT number (reverse charge)
    customer = customer_factory(brand=brand, country="DE", is_business=True, tax_id="DE136695976")

    # when invoiced 29.00
    invoice = issue(customer, [2900])

    # then D 411 / C 706 only, the revenue line marked AE for the VAT summary
    assert lines_of("invoice", invoice.pk, "invoice_finalized") == [("411", 2900, 0), ("706", 0, 2900)]
    revenue = JournalEntry.objects.get(source_id=invoice.pk).lines.get(account__code="706")
    assert revenue.tax_category == "AE"


def test_partial_credit_note(customer_factory, brand, fr_vat):
    # given an open invoice of 100.00 + 20 % VAT
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [10000], collection_method="send_invoice")

    # when a credit note of 60.00 (VAT included) is issued
    note = credit_note_create(invoice=invoice, amount=6000, reason="order_change", at=LATER)

    # then D 706 50.00 / D 445712 10.00 / C 411 60.00, and 411 is what remains due
    assert lines_of("credit_note", note.pk, "credit_note_issued") == [
        ("411", 0, 6000),
        ("445712", 1000, 0),
        ("706", 5000, 0),
    ]
    invoice.refresh_from_db()
    assert balances(brand)["411"] == invoice.amount_remaining == 6000
    assert balances(brand)["445712"] == -1000


def test_card_payment_with_gateway_fee(customer_factory, brand, fr_vat):
    # given an invoice of 120.00 charged by card through Stripe
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [10000])
    payment = _pending_payment(invoice)

    # when the gateway confirms it, keeping a 1.99 fee
    payment_record_outcome(
        payment=payment,
        result=ChargeResult(status="succeeded", reference="pi_1", amount=12000, currency="EUR", fee=199),
        at=LATER,
    )

    # then D 5117 (Stripe clearing) / C 411, and the fee D 627 / C 5117
    assert lines_of("payment", payment.pk, "payment_succeeded") == [("411", 0, 12000), ("5117", 12000, 0)]
    assert lines_of("payment", payment.pk, "gateway_fee") == [("5117", 0, 199), ("627", 199, 0)]
    assert balances(brand) == {"5117": 11801, "627": 199, "706": -10000, "445712": -2000}


def test_sepa_failure_then_retry(customer_factory, brand, fr_vat):
    # given an invoice collected by SEPA debit
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [10000])
    first = _pending_payment(invoice, method="sepa_debit")

    # when the first debit fails and the retry succeeds
    payment_record_outcome(
        payment=first,
        result=ChargeResult(status="failed", reference="pi_1", amount=12000, currency="EUR", decline_code="AM04"),
        at=LATER,
    )
    assert not JournalEntry.objects.filter(source_type="payment", source_id=first.pk).exists()
    retry = _pending_payment(invoice, method="sepa_debit", attempt=2)
    payment_record_outcome(
        payment=retry,
        result=ChargeResult(status="succeeded", reference="pi_2", amount=12000, currency="EUR"),
        at=LATER + timedelta(days=3),
    )

    # then only the retry is posted, and the receivable is settled
    assert lines_of("payment", retry.pk, "payment_succeeded") == [("411", 0, 12000), ("5117", 12000, 0)]
    assert "411" not in balances(brand)


def test_refund(customer_factory, brand, fr_vat, staff_factory):
    # given an invoice of 60.00 paid by bank transfer
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [5000], collection_method="send_invoice")
    payment = payment_record_manual(invoice=invoice, amount=6000, method="bank_transfer", at=LATER)
    assert lines_of("payment", payment.pk, "payment_succeeded") == [("411", 0, 6000), ("512", 6000, 0)]

    # when 24.00 is refunded (below the approval threshold: executed at once)
    refund = refund_request(
        payment=payment, amount=2400, reason="other", requested_by=staff_factory(), otp_verified_at=None
    )

    # then its credit note reverses revenue and VAT against 411, and the refund pays 411 from the bank
    refund.refresh_from_db()
    assert lines_of("credit_note", refund.credit_note_id, "credit_note_issued") == [
        ("411", 0, 2400),
        ("445712", 400, 0),
        ("706", 2000, 0),
    ]
    assert lines_of("refund", refund.pk, "refund_executed") == [("411", 2400, 0), ("512", 0, 2400)]
    assert balances(brand) == {"512": 3600, "706": -3000, "445712": -600}


def test_write_off(customer_factory, brand, fr_vat):
    # given an open invoice of 120.00 (100.00 + 20 % VAT)
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [10000], collection_method="send_invoice")

    # when it is written off (dunning's automatic outcome)
    invoice_mark_uncollectible(invoice=invoice, at=LATER, automatic=True)

    # then the French PCG's default recovers the VAT of the unpaid debt: D 654 net + D 445712 / C 411
    assert lines_of("invoice", invoice.pk, "invoice_uncollectible") == [
        ("411", 0, 12000),
        ("445712", 2000, 0),
        ("654", 10000, 0),
    ]
    assert balances(brand) == {"654": 10000, "706": -10000}

    # and a late payment of the written-off invoice is a recovered bad debt (7714) on which VAT is due again
    payment = payment_record_manual(invoice=invoice, amount=12000, method="cheque", at=LATER + timedelta(days=1))
    assert lines_of("payment", payment.pk, "payment_succeeded") == [
        ("445712", 0, 2000),
        ("512", 12000, 0),
        ("7714", 0, 10000),
    ]


def test_void_reverses_the_invoice_entry(customer_factory, brand, fr_vat):
    customer = customer_factory(brand=brand)
    invoice = issue(customer, [10000], collection_method="send_invoice")

    invoice_void(invoice=invoice, at=LATER)

    reversal = JournalEntry.objects.get(source_id=invoice.pk, movement="invoice_finalized_reversed")
    assert reversal.reversal_of.movement == "invoice_finalized"
    assert balances(brand) == {}


def test_entry_numbers_are_continuous_per_journal(customer_factory, brand, fr_vat):
    customer = customer_factory(brand=brand)
    invoices = [issue(customer, [1000 * n], at=ISSUED_AT + timedelta(hours=n)) for n in (1, 2, 3)]
    payment_record_manual(invoice=invoices[0], amount=1200, method="cash", at=LATER)
    assert not JournalEntry.objects.filter(number__isnull=False).exists()  # posted unnumbered

    ledger_entries_validate(brand=brand, livemode=True, up_to=LATER.date())
    numbers = list(
        JournalEntry.objects.filter(brand=brand).values_list("journal", "number").order_by("journal", "number")
    )
    assert numbers == [("BQ", 1), ("VT", 1), ("VT", 2), ("VT", 3)]
