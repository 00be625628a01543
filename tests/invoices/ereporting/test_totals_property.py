"""Hypothesis (issue 18): for any invoices, credit notes and payments of a period, the e-reported
totals equal the sums of the documents by rate and category, and reconcile with their headers."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoices.ereporting.selectors import (
    ereporting_document_totals,
    ereporting_payment_totals,
    ereporting_transaction_totals,
)
from tests.invoices.ereporting.documents import BUYERS, Doc, tax_of, write_documents, write_payment

pytestmark = pytest.mark.django_db

START, END = date(2026, 10, 1), date(2026, 10, 10)
GROUPS = [("S", "20"), ("S", "10"), ("S", "5.5"), ("S", "2.1"), ("AE", "0"), ("Z", "0"), ("E", "0"), ("O", "0")]
_serial = itertools.count()

group_strategy = st.tuples(st.sampled_from(GROUPS), st.integers(min_value=0, max_value=10_000_000)).map(
    lambda pair: (pair[0][0], pair[0][1], pair[1])
)
doc_strategy = st.builds(
    Doc,
    buyer=st.sampled_from(sorted(BUYERS)),
    # days 0-11: the period's ten days and the two after it (outside: never counted)
    day=st.integers(min_value=-1, max_value=11).map(lambda offset: START + timedelta(days=offset)),
    groups=st.lists(group_strategy, min_size=1, max_size=3, unique_by=lambda group: group[:2]).map(tuple),
    credit_note=st.booleans(),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    docs=st.lists(doc_strategy, max_size=12),
    payments=st.lists(st.tuples(st.integers(0, 11), st.integers(1, 5_000_000), st.integers(0, 10)), max_size=6),
)
def test_reported_totals_equal_the_documents_by_rate_and_category(brand_factory, customer_factory, docs, payments):
    serial = next(_serial)
    brand = brand_factory(slug=f"prop-{serial}", invoice_number_format=f"P{serial}-{{year}}-{{seq:06d}}")
    customers = {
        kind: customer_factory(brand=brand, country=buyer["country"], is_business=buyer["is_business"])
        for kind, buyer in BUYERS.items()
    }
    invoices = write_documents(brand=brand, customers=customers, docs=docs, prefix=f"P{serial}")
    paid = []
    for invoice_index, amount, day_offset in payments:
        if invoices:
            invoice = invoices[invoice_index % len(invoices)]
            paid.append(
                (write_payment(invoice=invoice, amount=amount, day=START + timedelta(days=day_offset)), invoice)
            )

    # expected: straight from the generated documents
    expected: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for doc in docs:
        if doc.buyer == "einvoiced" or not START <= doc.day <= END:
            continue
        for category, rate, taxable in doc.groups:
            sign = -1 if doc.credit_note else 1
            expected[(doc.buyer, category, rate)][0] += sign * taxable
            expected[(doc.buyer, category, rate)][1] += sign * tax_of(taxable, rate)

    reported: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for row in ereporting_transaction_totals(brand=brand, livemode=True, start=START, end=END):
        assert START <= row.day <= END and row.scope != "einvoiced"
        reported[(row.scope, row.vat_category, row.rate)][0] += row.taxable_amount
        reported[(row.scope, row.vat_category, row.rate)][1] += row.tax_amount
    assert {key: value for key, value in reported.items()} == {key: value for key, value in expected.items()}

    # the report reconciles with the documents' header columns, to the cent
    documents = ereporting_document_totals(brand=brand, livemode=True, start=START, end=END)
    net = sum(documents_row.net_excluding_tax for documents_row in documents)
    net_tax = sum(documents_row.net_tax for documents_row in documents)
    assert (net, net_tax) == (sum(v[0] for v in expected.values()), sum(v[1] for v in expected.values()))

    # payments: every cent collected on a reportable invoice with a taxed group, in the period, is reported
    payment_rows = ereporting_payment_totals(brand=brand, livemode=True, start=START, end=END)
    expected_collected: dict[str, int] = defaultdict(int)
    for payment, invoice in paid:
        reportable = invoice.issued_snapshot["buyer"] != BUYERS["einvoiced"] and any(
            group["category"] == "S" for group in invoice.tax_breakdown
        )
        if reportable and START <= payment.settled_at.date() <= END:
            expected_collected["b2c" if invoice.issued_snapshot["buyer"] == BUYERS["b2c"] else "international"] += (
                payment.amount
            )
    collected: dict[str, int] = defaultdict(int)
    for row in payment_rows:
        collected[row.scope] += row.amount
    assert dict(collected) == {scope: amount for scope, amount in expected_collected.items() if amount}
