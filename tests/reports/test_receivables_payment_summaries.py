"""Issue 20 item 7: the receivables summary (AR aging, DSO) and the payment summary (payments,
declines) give the live computation's figures on random histories, for every central filter,
for a period ended before the refresh (a month-end snapshot) and one running at it (the
snapshot taken at the refresh); an incremental refresh after changes (a payment, a partial
payment, a write-off, a void, a refund, new and failed attempts, a month ending) equals a
full rebuild; a summary not refreshed is seen to differ (the negative control).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db.models import F

from billing.models import Payment
from billing.services.payments import payment_record_manual
from billing.services.refunds import refund_request
from invoices.models import Invoice
from invoices.services.lifecycle import invoice_mark_uncollectible, invoice_record_payment, invoice_void
from reports import selectors
from reports.filters import ReportFilters
from reports.registry import REPORTS
from reports.selectors.common import as_month
from reports.selectors.summaries import month_index
from reports.summaries import report_summary_refresh
from tests.reports.test_month_summaries import History, random_history

pytestmark = pytest.mark.django_db

NAMES = (selectors.RECEIVABLES, selectors.PAYMENTS)
# Mid-history: invoices are finalized and payments attempted after it too.
REFRESH = datetime(2026, 6, 15, 10, 30, tzinfo=UTC)
METHODS = (("card", "sandbox"), ("sepa_debit", "stripe"), ("bank_transfer", "manual"))
DECLINES = ("insufficient_funds", "expired_card", "", "do_not_honor")


@pytest.fixture
def tax_rates(tax_rate_factory):
    return [
        tax_rate_factory(country=country, percentage=rate) for country, rate in (("FR", 20), ("DE", 19), ("BE", 21))
    ]


@pytest.fixture
def history(customer_factory, price_factory, brand_factory, tax_rates, request) -> History:
    seed = getattr(request, "param", 21)
    # Written before the first refresh (its watermark), as a real history would be.
    with time_machine.travel(REFRESH - timedelta(hours=1), tick=False):
        return _history(seed, customer_factory, price_factory, brand_factory)


def _history(seed: int, customer_factory, price_factory, brand_factory) -> History:
    history = random_history(seed, customer_factory, price_factory, brand_factory)
    rng = random.Random(seed)
    finalized = [invoice for invoice in history.invoices if invoice.finalized_at is not None]
    for invoice in finalized:
        invoice.refresh_from_db()
        if invoice.status == Invoice.Status.OPEN and invoice.amount_remaining > 1 and rng.random() < 0.3:
            invoice_record_payment(
                invoice=invoice, amount=invoice.amount_remaining // 2, at=invoice.finalized_at + timedelta(days=3)
            )
        elif invoice.status == Invoice.Status.OPEN and rng.random() < 0.1:
            invoice_mark_uncollectible(invoice=invoice, at=invoice.finalized_at + timedelta(days=40), automatic=True)
        _attempts(invoice, rng)
    return history


def _attempts(invoice: Invoice, rng: random.Random, *, count: int | None = None) -> list[Payment]:
    """Gateway attempts on an invoice (the source rows the reports count), some failed."""
    made = []
    for _attempt in range(rng.randint(0, 3) if count is None else count):
        method, gateway = rng.choice(METHODS)
        status = rng.choice(("succeeded", "failed", "failed", "pending"))
        made.append(
            Payment.objects.create(
                invoice=invoice,
                customer=invoice.customer,
                method=method,
                gateway=gateway,
                status=status,
                decline_code=rng.choice(DECLINES) if status == "failed" else "",
                amount=rng.randint(1, 50_000),
                currency=invoice.currency,
                attempted_at=invoice.finalized_at + timedelta(days=rng.choice((0, 1, 3, 10, 35)), hours=rng.random()),
            )
        )
    return made


def _month(instant: datetime) -> int:
    return month_index(as_month(instant))


def filter_sets(history: History) -> list[ReportFilters]:
    brand, price, customer = history.brands[0], history.prices[1], history.customers[2]
    year = ReportFilters(start=date(2025, 9, 1), end=date(2026, 8, 1))  # runs past the refresh
    return [
        year,
        year.with_months(start=date(2026, 1, 1), end=date(2026, 3, 1)),  # ended before it
        year.with_months(start=date(2025, 7, 1), end=date(2025, 11, 1)),
        year.with_months(start=date(2026, 6, 1), end=date(2026, 6, 1)),  # the month of the refresh
        year.with_months(start=date(2027, 1, 1), end=date(2027, 2, 1)),  # after it
        year.with_months(start=date(2024, 1, 1), end=date(2024, 3, 1)),  # before any invoice
        ReportFilters(start=year.start, end=year.end, brand=brand.pk),
        ReportFilters(start=year.start, end=date(2026, 2, 1), currency="USD"),
        ReportFilters(start=year.start, end=year.end, country="FR"),
        ReportFilters(start=year.start, end=year.end, brand=brand.pk, currency="EUR", country="DE"),
        ReportFilters(start=year.start, end=date(2026, 4, 1), livemode=False),
        ReportFilters(start=year.start, end=year.end, plan=price.pk),  # live: not in the grain
        ReportFilters(start=year.start, end=year.end, customer=customer.pk),  # live
    ]


READS = (
    ("ar-aging", selectors.ar_aging, selectors.ar_aging_live),
    ("dso", selectors.days_sales_outstanding, selectors.days_sales_outstanding_live),
    ("payments", selectors.payment_success, selectors.payment_success_live),
    ("declines", selectors.decline_reasons, selectors.decline_reasons_live),
)


def figures(history: History) -> list[list]:
    return [read(filters=filters) for filters in filter_sets(history) for _name, read, _live in READS]


def assert_equal_live(history: History) -> None:
    for name in NAMES:
        assert selectors.summary_status(name=name).built, name
    for filters in filter_sets(history):
        for name, read, live in READS:
            assert read(filters=filters) == live(filters=filters), (name, filters)


@pytest.mark.parametrize("history", [1, 2, 3], indirect=True)
def test_each_summary_equals_the_live_computation_on_random_histories(history):
    with time_machine.travel(REFRESH, tick=False):
        assert [report_summary_refresh(name=name) for name in NAMES] == [-1, -1]  # first: a build

        assert_equal_live(history)
        year = filter_sets(history)[0]
        aging = selectors.ar_aging(filters=year)
        assert len({row.bucket for row in aging if row.amount}) >= 3  # not an empty comparison
        assert all(row.dso for row in selectors.days_sales_outstanding(filters=year))
        assert {row.gateway for row in selectors.payment_success(filters=year)} == {"sandbox", "stripe", "manual"}
        assert len(selectors.decline_reasons(filters=year)) > 3
        # Say where the figures come from: the summary as of its refresh, or live for a customer.
        for name in ("ar-aging", "dso", "payments", "declines"):
            assert REPORTS[name].build(year).as_of.source == "summary"
            assert REPORTS[name].build(year).as_of.at == REFRESH
            assert REPORTS[name].build(filter_sets(history)[-1]).as_of.source == "live"


def test_an_incremental_refresh_after_changes_equals_a_full_rebuild(history, staff_factory, postgres_only):
    # The refresh's mark moves back to any write transaction open on the database (autovacuum's
    # ANALYZE takes one), and those start at the real time: the history stays in the past.
    with time_machine.travel(REFRESH, tick=False):
        assert report_summary_refresh(name=selectors.RECEIVABLES) == -1
        assert report_summary_refresh(name=selectors.PAYMENTS) == -1
    rng = random.Random(5)
    later = REFRESH + timedelta(minutes=20)
    with time_machine.travel(later, tick=False):
        open_ = list(Invoice.objects.filter(status=Invoice.Status.OPEN, amount_remaining__gt=1).order_by("pk"))
        old, recent = open_[0], open_[-1]
        assert old.finalized_at < datetime(2026, 1, 1, tzinfo=UTC)
        payment_record_manual(invoice=old, amount=old.amount_remaining, method="bank_transfer", at=later)
        partial = payment_record_manual(invoice=recent, amount=recent.amount_remaining // 2, method="cheque", at=later)
        refunded_at = later + timedelta(minutes=2)
        with time_machine.travel(refunded_at, tick=False):
            refund_request(
                payment=partial, amount=1, reason="other", requested_by=staff_factory(), otp_verified_at=refunded_at
            )
        partial.refresh_from_db()
        assert (partial.amount_refunded, partial.updated_at) == (1, refunded_at)  # a refund moves the watermark
        unpaid = (
            Invoice.objects.filter(status=Invoice.Status.OPEN, amount_remaining=F("amount_due"))
            .exclude(payments__status=Payment.Status.SUCCEEDED)
            .exclude(pk=recent.pk)
            .order_by("pk")
        )
        voided = invoice_void(invoice=unpaid[0], at=later)
        others = [invoice for invoice in open_[1:-1] if invoice.pk != voided.pk]
        invoice_mark_uncollectible(invoice=others[0], at=later, automatic=True)
        failed = Payment.objects.filter(status="pending").order_by("pk").first()
        assert failed is not None
        failed.status, failed.decline_code = Payment.Status.FAILED, "insufficient_funds"
        failed.save(update_fields=["status", "decline_code", "updated_at"])
        added = _attempts(others[1], rng, count=2)

    with time_machine.travel(later + timedelta(minutes=10), tick=False):
        # From the month the oldest changed invoice was finalized to the refresh's: not every month.
        oldest = min(invoice.finalized_at for invoice in (old, recent, voided, others[0]))
        assert report_summary_refresh(name=selectors.RECEIVABLES) == _month(later) - _month(oldest) + 1
        # The months of the attempts changed or added.
        changed = {_month(later), _month(failed.attempted_at), *(_month(payment.attempted_at) for payment in added)}
        assert report_summary_refresh(name=selectors.PAYMENTS) == len(changed)
        incremental = figures(history)
        assert_equal_live(history)
        assert report_summary_refresh(name=selectors.RECEIVABLES, full=True) == -1
        assert report_summary_refresh(name=selectors.PAYMENTS, full=True) == -1
        assert figures(history) == incremental

    # Nothing changed: only the snapshot at the refresh is retaken; a month ending retakes the
    # month it closed at its end.
    with time_machine.travel(later + timedelta(hours=1), tick=False):
        assert report_summary_refresh(name=selectors.RECEIVABLES) == 1
        assert report_summary_refresh(name=selectors.PAYMENTS) == 0
        assert_equal_live(history)
    with time_machine.travel(datetime(2026, 7, 2, 9, 0, tzinfo=UTC), tick=False):
        assert report_summary_refresh(name=selectors.RECEIVABLES) == 2
        assert_equal_live(history)
        incremental = figures(history)
        report_summary_refresh(name=selectors.RECEIVABLES, full=True)
        assert figures(history) == incremental


def test_a_summary_not_refreshed_after_a_change_differs_and_says_as_of_when(history, postgres_only):
    """The negative control: the equality checks above do catch a stale summary."""
    with time_machine.travel(REFRESH, tick=False):
        for name in NAMES:
            report_summary_refresh(name=name)
    later = REFRESH + timedelta(minutes=5)
    with time_machine.travel(later, tick=False):
        invoice = (
            Invoice.objects.filter(status=Invoice.Status.OPEN, amount_remaining__gt=0, customer__livemode=True)
            .order_by("pk")
            .first()
        )
        assert invoice is not None
        payment_record_manual(invoice=invoice, amount=invoice.amount_remaining, method="bank_transfer", at=later)
        _attempts(invoice, random.Random(1), count=3)
        # The summary's "as of" is still the refresh: read live at that instant, the old figures.
        year = filter_sets(history)[0]
        for name, read, live in READS:
            if name != "declines":  # the new attempts may all have succeeded
                assert read(filters=year) != live(filters=year), name
            table = REPORTS[name].build(year)
            assert (table.as_of.source, table.as_of.at) == ("summary", REFRESH)
    with time_machine.travel(later + timedelta(minutes=1), tick=False):
        for name in NAMES:
            report_summary_refresh(name=name)
        assert_equal_live(history)
