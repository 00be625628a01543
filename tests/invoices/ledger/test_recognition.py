"""Revenue recognition (issue 19 item 3): D 487 / C 706, and the report reconciles to the ledger to the cent."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db.models import Sum

from invoices.ledger.models import JournalLine, RevenueSchedule
from invoices.ledger.recognition import revenue_recognize
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.services.lifecycle import invoice_void
from invoices.types import DraftInvoice, DraftLine
from reports.filters import ReportFilters
from reports.selectors.revenue import revenue_recognition
from tests.invoices.ledger.helpers import balances

pytestmark = pytest.mark.django_db


def _subscription_invoice(customer, amount, start, end, *, at=None):
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency="EUR",
        billing_reason="manual",
        collection_method="send_invoice",
        lines=(DraftLine(kind="subscription", description="Plan", amount=amount, period_start=start, period_end=end),),
    )
    at = at or start
    return invoice_finalize(invoice=invoice_create(draft=draft, at=at, customer=customer), at=at)


def _ledger_month(brand, code, month_start, month_end):
    lines = JournalLine.objects.filter(
        entry__brand=brand, account__code=code, entry__date__gte=month_start, entry__date__lt=month_end
    ).aggregate(debit=Sum("debit"), credit=Sum("credit"))
    return (lines["credit"] or 0) - (lines["debit"] or 0)


def _deferred_at(brand, month_end):
    lines = JournalLine.objects.filter(entry__brand=brand, account__code="487", entry__date__lt=month_end).aggregate(
        debit=Sum("debit"), credit=Sum("credit")
    )
    return (lines["credit"] or 0) - (lines["debit"] or 0)


def test_invoice_defers_subscription_revenue(customer_factory, brand, fr_vat):
    customer = customer_factory(brand=brand)

    invoice = _subscription_invoice(
        customer, 10000, datetime(2026, 1, 15, 9, tzinfo=UTC), datetime(2026, 4, 15, 9, tzinfo=UTC)
    )

    assert balances(brand) == {"411": 12000, "487": -10000, "445712": -2000}
    assert RevenueSchedule.objects.get(invoice_id=invoice.pk).amount == 10000


def test_monthly_recognition_reconciles_with_the_report_to_the_cent(customer_factory, brand, fr_vat):
    # given a quarter billed in advance, a short period, and a year, across months
    customer = customer_factory(brand=brand)
    _subscription_invoice(customer, 10000, datetime(2026, 1, 15, 9, tzinfo=UTC), datetime(2026, 4, 15, 9, tzinfo=UTC))
    _subscription_invoice(customer, 5001, datetime(2026, 2, 10, 9, tzinfo=UTC), datetime(2026, 2, 20, 9, tzinfo=UTC))
    _subscription_invoice(customer, 99999, datetime(2026, 3, 3, 9, tzinfo=UTC), datetime(2027, 3, 3, 9, tzinfo=UTC))

    # when recognition runs after each month end (twice for March: the second run posts nothing)
    for through in (date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 3, 31), date(2026, 4, 30)):
        revenue_recognize(through=through, mode="monthly")

    # then each month's recognised revenue and deferred balance equal the report's, to the cent
    report = revenue_recognition(filters=ReportFilters(start=date(2026, 1, 1), end=date(2026, 4, 1), livemode=True))
    months = [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1), date(2026, 5, 1)]
    assert len(report) == 4
    for row, (start, end) in zip(report, zip(months, months[1:], strict=False), strict=True):
        recognised = _ledger_month(brand, "706", start, end)
        assert (row.month, recognised, _deferred_at(brand, end)) == (start, row.recognized, row.deferred)
    assert report[1].recognized == 3333 + 5001


def test_daily_recognition_releases_elapsed_days(customer_factory, brand, fr_vat):
    customer = customer_factory(brand=brand)
    _subscription_invoice(customer, 3100, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))

    revenue_recognize(through=date(2026, 1, 10), mode="daily")
    first = balances(brand)["706"]
    assert revenue_recognize(through=date(2026, 1, 10), mode="daily") == 0  # once only
    revenue_recognize(through=date(2026, 2, 5), mode="daily")

    # Europe/Paris days: 10 days less the first hour of the period (it starts at 01:00 local)
    assert 900 < -first < 1000
    assert balances(brand)["706"] == -3100 and "487" not in balances(brand)


def test_a_voided_invoice_stops_its_recognition(customer_factory, brand, fr_vat):
    customer = customer_factory(brand=brand)
    invoice = _subscription_invoice(
        customer, 9000, datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 4, 15, tzinfo=UTC)
    )
    revenue_recognize(through=date(2026, 1, 31), mode="monthly")

    invoice_void(invoice=invoice, at=datetime(2026, 2, 3, tzinfo=UTC))
    revenue_recognize(through=date(2026, 4, 30), mode="monthly")

    assert balances(brand) == {}
