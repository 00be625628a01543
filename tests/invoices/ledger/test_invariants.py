"""Hypothesis (issue 19): after any sequence of billing operations the ledger balances and its
accounts agree with the documents: 411 = open receivables, 4191 = customer credit, 44571x = VAT of
issued invoices minus credit notes, 487 = billed service not yet recognised."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.db.models import F, Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.services.payments import payment_record_manual
from config.errors import DomainError
from invoices.ledger.models import JournalLine, RevenueSchedule
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
    if kind == "issue":
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
            currency="EUR",
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


def _check(brand, customer) -> None:
    totals = JournalLine.objects.filter(entry__brand=brand).aggregate(
        d=Sum("debit"), c=Sum("credit"), fd=Sum("functional_debit"), fc=Sum("functional_credit")
    )
    assert totals["d"] == totals["c"] and totals["fd"] == totals["fc"]
    ledger = balances(brand)
    open_receivables = Invoice.objects.filter(customer=customer, status="open").aggregate(s=Sum("amount_remaining"))[
        "s"
    ]
    assert ledger.get("411", 0) == (open_receivables or 0)
    credit = BalanceTransaction.objects.filter(customer=customer).aggregate(s=Sum("amount"))["s"] or 0
    assert ledger.get("4191", 0) == -credit
    invoiced_vat = (
        Invoice.objects.filter(customer=customer)
        .exclude(status__in=["draft", "void"])
        .aggregate(s=Sum("tax_total"))["s"]
        or 0
    )
    credited_vat = CreditNote.objects.filter(customer=customer, status="issued").aggregate(s=Sum("tax_total"))["s"] or 0
    vat = sum(amount for code, amount in ledger.items() if code.startswith("44571"))
    assert vat == -(invoiced_vat - credited_vat)
    unrecognised = RevenueSchedule.objects.filter(brand=brand).aggregate(s=Sum(F("amount") - F("recognized")))["s"] or 0
    assert ledger.get("487", 0) == -unrecognised


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_the_ledger_agrees_with_the_documents_after_any_operations(customer_factory, brand_factory, fr_vat, ops):
    # a brand per example: examples share the test's transaction, the checks look at one brand's books
    brand = brand_factory()
    customer = customer_factory(brand=brand)
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
