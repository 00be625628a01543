"""Hypothesis (issue 19): after any sequence of billing operations, in the functional currency (EUR)
and a second one (USD, rates changing every day), the ledger balances in both currencies and its
accounts agree with the documents: 411 = open receivables (in the functional currency: at their
historical rates), 4191 = customer credit, 44571x = VAT of issued invoices minus credit notes
minus the VAT relieved on written-off debts, 487 = billed service not yet recognised."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from django.db import transaction
from django.db.models import F, Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.services.payments import payment_record_manual
from config.errors import DomainError
from config.money import round_fraction
from invoices.ledger.fx import functional_amount_at
from invoices.ledger.models import ExchangeRate, JournalEntry, JournalLine, RevenueSchedule
from invoices.ledger.recognition import revenue_recognize
from invoices.models import BalanceTransaction, CreditNote, Invoice
from invoices.services.balance import balance_adjust
from invoices.services.credit_notes import credit_note_create
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.services.lifecycle import invoice_mark_uncollectible, invoice_void
from invoices.types import DraftInvoice, DraftLine
from tests.invoices.ledger.helpers import balances

pytestmark = pytest.mark.django_db

_clock = itertools.count()
START = datetime(2026, 1, 5, 9, tzinfo=UTC)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("issue"), st.integers(100, 50_000), st.booleans()),
        st.tuples(st.just("issue_usd"), st.integers(100, 50_000), st.booleans()),
        st.tuples(st.just("pay"), st.integers(0, 20), st.integers(1, 100)),
        st.tuples(st.just("credit"), st.integers(0, 20), st.integers(1, 100)),
        st.tuples(st.just("write_off"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("void"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("adjust"), st.integers(1, 5_000), st.just(0)),
        st.tuples(st.just("recognize"), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=12,
)


def _now() -> datetime:
    return START + timedelta(hours=7 * next(_clock))


def _apply(customer, operation) -> None:
    kind, first, second = operation
    at = _now()
    invoices = list(Invoice.objects.filter(customer=customer).exclude(status="draft").order_by("pk"))
    target = invoices[first % len(invoices)] if invoices else None
    if kind in ("issue", "issue_usd"):
        line = (
            DraftLine(
                kind="subscription",
                description="Plan",
                amount=first,
                period_start=at,
                period_end=at + timedelta(days=45),
            )
            if second
            else DraftLine(kind="one_off", description="Item", amount=first)
        )
        draft = DraftInvoice(
            customer_id=customer.pk,
            currency="USD" if kind == "issue_usd" else "EUR",
            billing_reason="manual",
            collection_method="send_invoice",
            lines=(line,),
        )
        invoice_finalize(invoice=invoice_create(draft=draft, at=at, customer=customer), at=at)
    elif kind == "pay" and target is not None and target.amount_remaining > 0:
        payment_record_manual(
            invoice=target, amount=max(1, target.amount_remaining * second // 100), method="bank_transfer", at=at
        )
    elif kind == "credit" and target is not None:
        credit_note_create(invoice=target, amount=max(1, target.total * second // 400), reason="other", at=at)
    elif kind == "write_off" and target is not None:
        invoice_mark_uncollectible(invoice=target, at=at, automatic=True)
    elif kind == "void" and target is not None:
        invoice_void(invoice=target, at=at)
    elif kind == "adjust":
        balance_adjust(customer=customer, currency="EUR", amount=first, description="Goodwill", at=at)
    elif kind == "recognize":
        revenue_recognize(through=at.date(), mode="daily")


def _usd_rates() -> None:
    """A rate for every day of the year, moving by up to ±8 % from day to day."""
    ExchangeRate.objects.bulk_create(
        [
            ExchangeRate(
                currency="USD", date=date(2026, 1, 1) + timedelta(days=n), rate=Decimal(100 + (n * 37) % 17) / 100
            )
            for n in range(365)
        ],
        ignore_conflicts=True,
    )


def _sums(lines) -> dict[str, int]:
    totals = lines.aggregate(d=Sum("debit"), c=Sum("credit"), fd=Sum("functional_debit"), fc=Sum("functional_credit"))
    return {key: value or 0 for key, value in totals.items()}


def _open_at_historical_rate(invoice: Invoice) -> int:
    """An open invoice's receivable in EUR: its amount due converted at its issue day's rate (the
    receivable's own conversion), the open part in proportion."""
    if invoice.currency == "EUR":
        return invoice.amount_remaining
    entry = JournalEntry.objects.get(source_type="invoice", source_id=invoice.pk, movement="invoice_finalized")
    rate = ExchangeRate.objects.get(currency="USD", date=entry.date).rate
    historical = functional_amount_at(invoice.amount_due, (Decimal(1) / rate).quantize(Decimal("1E-10")), "USD", "EUR")
    return round_fraction(Fraction(invoice.amount_remaining * historical, invoice.amount_due))


def _check(brand, customer) -> None:
    everything = _sums(JournalLine.objects.filter(entry__brand=brand))
    assert everything["d"] == everything["c"] and everything["fd"] == everything["fc"]
    receivable = _sums(JournalLine.objects.filter(entry__brand=brand, account__code="411"))
    open_invoices = list(Invoice.objects.filter(customer=customer, status="open"))
    assert receivable["fd"] - receivable["fc"] == sum(_open_at_historical_rate(invoice) for invoice in open_invoices)
    # with both currencies, the document-currency checks hold per currency
    relieved_invoices = JournalEntry.objects.filter(brand=brand, movement="invoice_uncollectible").count()
    for currency in ("EUR", "USD"):
        _check_currency(brand, customer, currency, relieved_invoices)


def _check_currency(brand, customer, currency: str, relieved_invoices: int) -> None:
    ledger = balances(brand, currency=currency)
    open_receivables = Invoice.objects.filter(customer=customer, status="open", currency=currency).aggregate(
        s=Sum("amount_remaining")
    )["s"]
    assert ledger.get("411", 0) == (open_receivables or 0)
    credit = (
        BalanceTransaction.objects.filter(customer=customer, currency=currency).aggregate(s=Sum("amount"))["s"] or 0
    )
    assert ledger.get("4191", 0) == -credit
    invoices = Invoice.objects.filter(customer=customer, currency=currency).exclude(status__in=["draft", "void"])
    invoiced_vat = invoices.aggregate(s=Sum("tax_total"))["s"] or 0
    credit_notes = CreditNote.objects.filter(customer=customer, status="issued", currency=currency)
    credited_vat = credit_notes.aggregate(s=Sum("tax_total"))["s"] or 0
    # VAT relieved on what is written off and still unpaid: the VAT share of what remains due
    relieved = 0
    for invoice in invoices.filter(status="uncollectible"):
        invoice_credits = CreditNote.objects.filter(invoice=invoice, status="issued")
        gross = invoice.total - (invoice_credits.aggregate(s=Sum("total"))["s"] or 0)
        vat = invoice.tax_total - (invoice_credits.aggregate(s=Sum("tax_total"))["s"] or 0)
        relieved += round_fraction(Fraction(vat * invoice.amount_remaining, gross)) if gross > 0 else 0
    vat = sum(amount for code, amount in ledger.items() if code.startswith("44571"))
    # exact without write-offs; each write-off and recovery rounds once, pro rata
    assert abs(vat - (-(invoiced_vat - credited_vat) + relieved)) <= 2 * relieved_invoices
    unrecognised = (
        RevenueSchedule.objects.filter(brand=brand, currency=currency).aggregate(s=Sum(F("amount") - F("recognized")))[
            "s"
        ]
        or 0
    )
    assert ledger.get("487", 0) == -unrecognised


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_the_ledger_agrees_with_the_documents_after_any_operations(customer_factory, brand_factory, fr_vat, ops):
    # a brand per example: examples share the test's transaction, the checks look at one brand's books
    brand = brand_factory()
    customer = customer_factory(brand=brand)
    _usd_rates()
    for operation in ops:
        try:
            with transaction.atomic():
                _apply(customer, operation)
        except DomainError:
            pass  # a refused operation (nothing to void, too much credit...) changes nothing
        _check(brand, customer)


def test_negative_control_the_check_sees_a_missing_posting(customer_factory, brand, fr_vat, settings):
    customer = customer_factory(brand=brand)
    settings.TARIF_LEDGER_ENABLED = False
    _apply(customer, ("issue", 1000, False))

    with pytest.raises(AssertionError):
        _check(brand, customer)
