"""Hypothesis (issue 18): for any invoices, credit notes, payments and refunds of a period, in
euros or another currency with a known rate, the e-reported totals equal the sums of the
documents by rate and category (credit notes and refunds negative), in the documents' currency
and in EUR, and reconcile with their headers."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoices.ereporting.selectors import (
    ereporting_document_totals,
    ereporting_payment_totals,
    ereporting_transaction_totals,
)
from invoices.ledger.models import ExchangeRate
from tests.invoices.ereporting.documents import BUYERS, Doc, tax_of, write_documents, write_payment, write_refund

pytestmark = pytest.mark.django_db

START, END = date(2026, 10, 1), date(2026, 10, 10)
GROUPS = [("S", "20"), ("S", "10"), ("S", "5.5"), ("S", "2.1"), ("AE", "0"), ("Z", "0"), ("E", "0"), ("O", "0")]
# ECB style: one euro buys `rate` units. JPY has no minor unit (exponent 0).
CURRENCIES = {"EUR": None, "USD": Decimal("1.0842"), "JPY": Decimal("162.37")}
EXPONENTS = {"EUR": 2, "USD": 2, "JPY": 0}
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
    currency=st.sampled_from(sorted(CURRENCIES)),
)


def day_rate(currency: str, day: date) -> Decimal:
    """The rate the test stores for `day` (a different one each day, so the day's rate matters)."""
    base = CURRENCIES[currency]
    assert base is not None
    return base + Decimal(day.toordinal() % 7) / 1000


def to_eur(amount: int, currency: str, day: date) -> int:
    """Independent of invoices.ledger.fx: EUR minor units = amount / rate, one rounding half away from 0."""
    if currency == "EUR":
        return amount
    per_unit = (Decimal(1) / day_rate(currency, day)).quantize(Decimal("1E-10"))
    scale = Decimal(10) ** (2 - EXPONENTS[currency])
    return int((Decimal(amount) * per_unit * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def store_rates() -> None:
    for currency in ("USD", "JPY"):
        for offset in range(-3, 14):
            day = START + timedelta(days=offset)
            ExchangeRate.objects.get_or_create(
                base="EUR", currency=currency, date=day, defaults={"rate": day_rate(currency, day)}
            )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    docs=st.lists(doc_strategy, max_size=12),
    # (invoice, amount, settlement day, refunded per cent of it, refund day)
    payments=st.lists(
        st.tuples(
            st.integers(0, 11), st.integers(1, 5_000_000), st.integers(0, 10), st.integers(0, 100), st.integers(0, 11)
        ),
        max_size=6,
    ),
)
def test_reported_totals_equal_the_documents_by_rate_and_category(brand_factory, customer_factory, docs, payments):
    serial = next(_serial)
    store_rates()
    brand = brand_factory(slug=f"prop-{serial}", invoice_number_format=f"P{serial}-{{year}}-{{seq:06d}}")
    customers = {
        kind: customer_factory(brand=brand, country=buyer["country"], is_business=buyer["is_business"])
        for kind, buyer in BUYERS.items()
    }
    invoices = write_documents(brand=brand, customers=customers, docs=docs, prefix=f"P{serial}")
    moves = []  # (sign, amount, day, invoice)
    for invoice_index, amount, day_offset, refunded_percent, refund_offset in payments:
        if not invoices:
            break
        invoice = invoices[invoice_index % len(invoices)]
        payment = write_payment(invoice=invoice, amount=amount, day=START + timedelta(days=day_offset))
        moves.append((1, amount, payment.settled_at.date(), invoice))
        refunded = amount * refunded_percent // 100
        if refunded:
            refund_day = START + timedelta(days=max(day_offset, refund_offset))  # never before the payment
            write_refund(payment=payment, amount=refunded, day=refund_day)
            moves.append((-1, refunded, refund_day, invoice))

    # expected: straight from the generated documents, per day and currency, then in EUR
    expected: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for doc in docs:
        if doc.buyer == "einvoiced" or not START <= doc.day <= END:
            continue
        for category, rate, taxable in doc.groups:
            sign = -1 if doc.credit_note else 1
            key = (doc.buyer, doc.day, doc.currency, category, rate)
            expected[key][0] += sign * taxable
            expected[key][1] += sign * tax_of(taxable, rate)
    expected_eur: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for (scope, day, currency, category, rate), (taxable, tax) in expected.items():
        expected_eur[(scope, category, rate)][0] += to_eur(taxable, currency, day)
        expected_eur[(scope, category, rate)][1] += to_eur(tax, currency, day)

    reported: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    reported_eur: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for row in ereporting_transaction_totals(brand=brand, livemode=True, start=START, end=END):
        assert START <= row.day <= END and row.scope != "einvoiced"
        key = (row.scope, row.day, row.currency, row.vat_category, row.rate)
        reported[key][0] += row.taxable_amount
        reported[key][1] += row.tax_amount
        reported_eur[(row.scope, row.vat_category, row.rate)][0] += row.taxable_amount_eur
        reported_eur[(row.scope, row.vat_category, row.rate)][1] += row.tax_amount_eur
    assert dict(reported) == dict(expected)
    assert dict(reported_eur) == dict(expected_eur)

    # the report reconciles with the documents' header columns, to the cent, per currency
    net: dict[str, tuple[int, int]] = {
        row.currency: (row.net_excluding_tax, row.net_tax)
        for row in ereporting_document_totals(brand=brand, livemode=True, start=START, end=END)
    }
    for currency in CURRENCIES:
        in_currency = [value for key, value in expected.items() if key[2] == currency]
        assert net.get(currency, (0, 0)) == (sum(v[0] for v in in_currency), sum(v[1] for v in in_currency))

    # payments: every cent collected on a reportable invoice with a taxed group in the period is
    # reported, every refund executed in the period is taken off (on its own day)
    expected_collected: dict[tuple[str, str], int] = defaultdict(int)
    for sign, amount, day, invoice in moves:
        reportable = invoice.issued_snapshot["buyer"] != BUYERS["einvoiced"] and any(
            group["category"] == "S" for group in invoice.tax_breakdown
        )
        if reportable and START <= day <= END:
            scope = "b2c" if invoice.issued_snapshot["buyer"] == BUYERS["b2c"] else "international"
            expected_collected[(scope, invoice.currency)] += sign * amount
    collected: dict[tuple[str, str], int] = defaultdict(int)
    for row in ereporting_payment_totals(brand=brand, livemode=True, start=START, end=END):
        collected[(row.scope, row.currency)] += row.amount
        # each row's EUR amount is its amount at the rate of its day
        assert row.amount_eur == to_eur(row.amount, row.currency, row.day)
    assert {key: value for key, value in collected.items() if value} == {
        key: value for key, value in expected_collected.items() if value
    }
