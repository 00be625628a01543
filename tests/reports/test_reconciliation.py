"""Reports against the invoices, to the cent, on the demo's generated year of billing
(a test clock that lived twelve months: monthly, per-seat tiered and yearly plans, a
20 % coupon for three months, usage, a mid-period upgrade, a cancellation, FR VAT and a
German reverse-charge customer)."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import date
from fractions import Fraction

import pytest
from django.core.management import call_command
from django.db.models import Sum

from billing.selectors import cycle_spec
from config.money import round_fraction
from invoices.models import Invoice, InvoiceLine
from reports.filters import ReportFilters, add_months, month_start, report_timezone
from reports.selectors import billed_by_kind, mrr_movements, revenue_recognition

pytestmark = pytest.mark.django_db


@pytest.fixture
def year_of_invoices():
    call_command("seed_demo", stdout=io.StringIO())
    # The demo's year lives on a test clock: test-mode data, which the reports show in test mode.
    issued = Invoice.objects.filter(customer__livemode=False).exclude(status__in=["draft", "void"])
    assert issued.count() >= 30, "the demo should have a year of invoices"
    first = issued.earliest("finalized_at").finalized_at.astimezone(report_timezone())
    last = issued.latest("finalized_at").finalized_at.astimezone(report_timezone())
    return ReportFilters(start=date(first.year, first.month, 1), end=date(last.year, last.month, 1), livemode=False)


def _net(line: InvoiceLine) -> int:
    return line.amount - line.discount_amount - (line.tax_amount if line.tax_inclusive else 0)


def test_billed_by_kind_adds_up_to_the_invoice_totals(year_of_invoices):
    rows = billed_by_kind(filters=year_of_invoices)

    issued = Invoice.objects.filter(customer__livemode=False).exclude(status__in=["draft", "void"])
    for currency in {row.currency for row in rows}:
        mine = [row for row in rows if row.currency == currency]
        assert sum(row.total for row in mine) == issued.filter(currency=currency).aggregate(t=Sum("total"))["t"]
        assert all(row.excluding_tax + row.tax == row.total for row in mine)
        assert (
            sum(row.excluding_tax for row in mine)
            == issued.filter(currency=currency).aggregate(t=Sum("total_excluding_tax"))["t"]
        )


def test_recognized_plus_deferred_is_what_was_invoiced(year_of_invoices):
    # Look far enough ahead for the yearly plan to be fully recognized.
    filters = year_of_invoices.with_months(start=year_of_invoices.start, end=add_months(year_of_invoices.end, 13))
    rows = revenue_recognition(filters=filters)

    lines = InvoiceLine.objects.filter(invoice__customer__livemode=False, kind="subscription").exclude(
        invoice__status__in=["draft", "void"]
    )
    invoiced = sum(_net(line) for line in lines)
    assert invoiced > 0
    assert sum(row.invoiced for row in rows) == invoiced
    assert sum(row.recognized for row in rows) == invoiced
    assert rows[-1].deferred == 0
    yearly = [line for line in lines if line.price.cycle.get("unit") == "year"]
    assert yearly, "the demo has a yearly plan, recognized over twelve months"
    assert any(row.deferred > 0 for row in rows)


def test_mrr_matches_the_subscription_lines_month_by_month(year_of_invoices):
    """An independent computation in Python over every line: same figure to the cent."""
    rows = mrr_movements(filters=year_of_invoices)

    expected: dict[date, int] = defaultdict(int)
    lines = InvoiceLine.objects.filter(
        invoice__customer__livemode=False, kind="subscription", price__usage_type="licensed"
    ).exclude(invoice__status__in=["draft", "void"])
    months = [row.month for row in rows]
    for line in lines.select_related("price", "invoice"):
        factor = Fraction(cycle_spec(line.price.cycle).periods_per_year()) / 12
        for month in months:
            month_end = month_start(add_months(month, 1))
            if line.period_start < month_end <= line.period_end:
                expected[month] += round_fraction(_net(line) * factor)
    assert any(expected.values())
    assert {row.month: row.mrr for row in rows} == {month: expected[month] for month in months}
    for row in rows:
        assert row.start_mrr + row.net_new == row.mrr
    assert sum(row.new_customers for row in rows) >= 3
    assert sum(row.expansion for row in rows) > 0  # the studio's upgrade
    assert sum(row.churned_customers for row in rows) >= 1  # the brasserie left
