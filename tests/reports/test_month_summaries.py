"""Issue 20: the month summaries (billed, invoices by status, revenue recognition) and the usage
report on the usage rollups give the live computation's figures, on random histories and for
every central filter; a refresh is idempotent and recomputes only the months a change touched;
a summary not refreshed after a change is seen to differ (the negative control), and says so
with its "as of".
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from billing.models import Meter, UsageEvent
from billing.services.usage import usage_events_insert
from invoices.calculations import DiscountInput
from invoices.models import Invoice
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.services.lifecycle import invoice_record_payment, invoice_void
from invoices.types import DraftDiscount, DraftInvoice, DraftLine
from reports import selectors
from reports.filters import ReportFilters
from reports.registry import REPORTS
from reports.selectors.summaries import AT_REFRESH
from reports.summaries import report_summaries_refresh, report_summary_refresh
from tests.reports.scenario import paris

pytestmark = pytest.mark.django_db


@pytest.fixture
def tax_rates(tax_rate_factory):
    """A standard VAT rate in each customer country the histories use."""
    return [
        tax_rate_factory(country=country, percentage=rate) for country, rate in (("FR", 20), ("DE", 19), ("BE", 21))
    ]


YEAR = ReportFilters(start=date(2025, 9, 1), end=date(2026, 8, 1))
MONTHLY = {"kind": "interval", "unit": "month", "count": 1}
QUARTERLY = {"kind": "interval", "unit": "month", "count": 3}
YEARLY = {"kind": "interval", "unit": "year", "count": 1}
KINDS = ("usage", "proration", "one_off")


class History:
    def __init__(self) -> None:
        self.brands: list = []
        self.prices: list = []
        self.customers: list = []
        self.invoices: list[Invoice] = []


def _issue(customer, price, start, end, rng: random.Random, *, finalize: bool = True) -> Invoice:
    lines = [
        DraftLine(
            kind="subscription",
            description=price.nickname or "plan",
            amount=int(price.unit_amount),
            unit_amount=price.unit_amount,
            price_id=price.pk,
            period_start=start,
            period_end=end,
        )
    ]
    for _extra in range(rng.randint(0, 2)):
        lines.append(
            DraftLine(kind=rng.choice(KINDS), description="extra", amount=rng.randint(-500, 5000), unit_amount=None)
        )
    percent_off = rng.choice([None, None, 10, 50])
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency=price.currency,
        billing_reason="subscription_cycle",
        lines=tuple(lines),
        discounts=(DraftDiscount(discount=DiscountInput(percent_off=percent_off), label="promo"),)
        if percent_off
        else (),
        period_start=start,
        period_end=end,
    )
    invoice = invoice_create(draft=draft, at=start, customer=customer)
    return invoice_finalize(invoice=invoice, at=start) if finalize else invoice


def random_history(seed: int, customer_factory, price_factory, brand_factory) -> History:
    """Two brands, two currencies, three countries, a test-mode customer; monthly, quarterly
    and yearly plans starting on any day; extra usage, proration and one-off lines; some
    invoices voided, some paid, some left as drafts."""
    rng = random.Random(seed)
    history = History()
    history.brands = [brand_factory(slug=f"sum-{seed}-a"), brand_factory(slug=f"sum-{seed}-b")]
    for currency in ("EUR", "USD"):
        for cycle, amount in ((MONTHLY, 2900), (QUARTERLY, 8000), (YEARLY, 120001)):
            history.prices.append(
                price_factory(
                    nickname=f"{currency} {cycle['unit']}",
                    currency=currency,
                    cycle=cycle,
                    unit_amount=amount + rng.randint(0, 99),
                )
            )
    for index in range(8):
        history.customers.append(
            customer_factory(
                legal_name=f"Customer {seed}-{index}",
                brand=rng.choice(history.brands),
                country=rng.choice(("FR", "DE", "BE")),
                currency=rng.choice(("EUR", "USD")),
                livemode=index != 0,
            )
        )
    periods = []
    for customer in history.customers:
        prices = [price for price in history.prices if price.currency == customer.currency]
        for _subscription in range(rng.randint(1, 2)):
            price = rng.choice(prices)
            start = paris(2025, rng.randint(7, 12), rng.randint(1, 28)) + timedelta(hours=rng.randint(0, 23))
            step = {"month": 1, "year": 12}[price.cycle["unit"]] * price.cycle["count"]
            while start < paris(2026, 9):
                month = start.month - 1 + step
                end = start.replace(year=start.year + month // 12, month=month % 12 + 1)
                periods.append((start, end, customer, price))
                start = end
    for start, end, customer, price in sorted(periods, key=lambda period: period[0]):
        invoice = _issue(customer, price, start, end, rng, finalize=rng.random() > 0.05)
        history.invoices.append(invoice)
    for invoice in history.invoices:
        chance = rng.random()
        if invoice.status != Invoice.Status.OPEN:
            continue
        if chance < 0.1:
            invoice_void(invoice=invoice, at=invoice.finalized_at + timedelta(days=2))
        elif chance < 0.6 and invoice.amount_remaining > 0:
            invoice_record_payment(
                invoice=invoice, amount=invoice.amount_remaining, at=invoice.finalized_at + timedelta(days=1)
            )
    return history


def filter_sets(history: History) -> list[ReportFilters]:
    brand, price = history.brands[0], history.prices[1]
    return [
        YEAR,
        YEAR.with_months(start=date(2026, 1, 1), end=date(2026, 3, 1)),
        ReportFilters(start=YEAR.start, end=YEAR.end, brand=brand.pk),
        ReportFilters(start=YEAR.start, end=YEAR.end, currency="USD"),
        ReportFilters(start=YEAR.start, end=YEAR.end, country="FR"),
        ReportFilters(start=YEAR.start, end=YEAR.end, plan=price.pk),
        ReportFilters(start=YEAR.start, end=YEAR.end, brand=brand.pk, currency="EUR", country="DE"),
        ReportFilters(start=YEAR.start, end=YEAR.end, livemode=False),
    ]


def assert_summaries_equal_live(history: History) -> None:
    for name in selectors.SUMMARY_NAMES:
        assert selectors.summary_status(name=name).built, name
    for filters in filter_sets(history):
        assert selectors.billed_by_kind(filters=filters) == selectors.billed_by_kind_live(filters=filters), filters
        assert selectors.revenue_recognition(filters=filters) == selectors.revenue_recognition_live(filters=filters), (
            filters
        )
        assert selectors.invoices_by_status(filters=filters) == selectors.invoices_by_status_live(filters=filters), (
            filters
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_summary_equals_the_live_computation_on_random_histories(
    seed, customer_factory, price_factory, brand_factory, tax_rates
):
    history = random_history(seed, customer_factory, price_factory, brand_factory)
    assert report_summaries_refresh() == {name: -1 for name in selectors.SUMMARY_NAMES}  # first: a build

    assert_summaries_equal_live(history)
    assert any(row.total for row in selectors.billed_by_kind(filters=YEAR))  # not an empty comparison
    assert any(row.recognized for row in selectors.revenue_recognition(filters=YEAR))
    assert {row.status for row in selectors.invoices_by_status(filters=YEAR)} >= {"open", "paid"}


def test_a_refresh_is_idempotent_and_recomputes_only_the_months_changed(
    customer_factory, price_factory, brand_factory, tax_rates, postgres_only
):
    # In the past: the refresh's mark moves back to any write transaction open on the database
    # (autovacuum's ANALYZE takes one), and those start at the real time.
    begin = datetime.now(UTC) - timedelta(hours=2)
    with time_machine.travel(begin, tick=False):
        history = random_history(7, customer_factory, price_factory, brand_factory)
    later = begin + timedelta(minutes=1)
    with time_machine.travel(later, tick=False):
        report_summaries_refresh()
    figures = [selectors.revenue_recognition(filters=filters) for filters in filter_sets(history)]

    with time_machine.travel(later + timedelta(minutes=15), tick=False):
        assert report_summaries_refresh() == {name: int(name in AT_REFRESH) for name in selectors.SUMMARY_NAMES}
        assert report_summaries_refresh(full=True) == {name: -1 for name in selectors.SUMMARY_NAMES}
    assert [selectors.revenue_recognition(filters=filters) for filters in filter_sets(history)] == figures
    assert all(
        selectors.summary_status(name=name).refreshed_at == later + timedelta(minutes=15)
        for name in selectors.SUMMARY_NAMES
    )

    # One monthly invoice voided: billed and status recompute its month, recognition the months
    # its service period overlaps (two at most) — not the whole year.
    invoice = Invoice.objects.filter(status=Invoice.Status.OPEN, lines__price__cycle=MONTHLY).order_by("pk").first()
    assert invoice is not None
    with time_machine.travel(later + timedelta(minutes=20), tick=False):
        invoice_void(invoice=invoice, at=invoice.finalized_at + timedelta(days=3))
    with time_machine.travel(later + timedelta(minutes=30), tick=False):
        changed = report_summaries_refresh()
        assert report_summaries_refresh() == {name: int(name in AT_REFRESH) for name in selectors.SUMMARY_NAMES}
    assert changed[selectors.BILLED] == 1
    assert 1 <= changed[selectors.INVOICE_STATUS] <= 2  # and the month it was created in, if another
    assert 1 <= changed[selectors.RECOGNITION] <= 2
    assert_summaries_equal_live(history)


def test_a_summary_not_refreshed_after_a_change_keeps_its_figures_and_says_as_of_when(
    customer_factory, price_factory, brand_factory, tax_rates, postgres_only
):
    """The negative control: the equality check above does catch a stale summary."""
    history = random_history(11, customer_factory, price_factory, brand_factory)
    report_summaries_refresh()
    customer = next(customer for customer in history.customers if customer.livemode)
    price = next(price for price in history.prices if price.currency == customer.currency)

    _issue(customer, price, paris(2026, 9, 5), paris(2026, 10, 5), random.Random(0))
    filters = YEAR.with_months(start=YEAR.start, end=date(2026, 9, 1))

    for name, read, live in (
        (selectors.BILLED, selectors.billed_by_kind, selectors.billed_by_kind_live),
        (selectors.RECOGNITION, selectors.revenue_recognition, selectors.revenue_recognition_live),
        (selectors.INVOICE_STATUS, selectors.invoices_by_status, selectors.invoices_by_status_live),
    ):
        assert read(filters=filters) != live(filters=filters), name
        table = REPORTS[name].build(filters)
        assert table.as_of is not None
        assert (table.as_of.source, table.as_of.at) == ("summary", selectors.summary_status(name=name).refreshed_at)
    # Filters outside the grain are computed live, and say so.
    one_customer = ReportFilters(start=YEAR.start, end=YEAR.end, customer=customer.pk)
    assert REPORTS["billed"].build(one_customer).as_of.source == "live"

    report_summaries_refresh()
    assert_summaries_equal_live(history)


def test_a_summary_cut_in_another_time_zone_is_not_read(
    customer_factory, price_factory, brand_factory, tax_rates, settings
):
    random_history(5, customer_factory, price_factory, brand_factory)
    report_summary_refresh(name=selectors.BILLED)
    assert selectors.summary_status(name=selectors.BILLED).built

    settings.TARIF_REPORTS_TIMEZONE = "America/New_York"

    assert not selectors.summary_status(name=selectors.BILLED).built
    assert selectors.billed_by_kind(filters=YEAR) == selectors.billed_by_kind_live(filters=YEAR)
    assert report_summary_refresh(name=selectors.BILLED) == -1  # rebuilt in the new zone
    assert selectors.billed_by_kind(filters=YEAR) == selectors.billed_by_kind_live(filters=YEAR)


def test_an_unknown_summary_is_refused():
    with pytest.raises(ValueError, match="unknown report summary"):
        report_summary_refresh(name="mrr-by-planet")


# -- Usage: the rollups -----------------------------------------------------------------------


def _events(rng: random.Random, customers, meters, count: int) -> list[UsageEvent]:
    rows = []
    for index in range(count):
        if rng.random() < 0.3:  # around a month's start in Paris: 22:00-01:00 UTC
            month = rng.randint(1, 12)
            moment = datetime(2026, month, 1, tzinfo=UTC) - timedelta(minutes=rng.randint(-60, 180))
        else:
            moment = datetime(2025, 12, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 300 * 86400))
        rows.append(
            UsageEvent(
                customer=rng.choice(customers),
                meter=rng.choice(meters),
                external_id=f"e-{index}",
                timestamp=moment,
                value=Decimal(rng.randint(0, 10_000)) / 100,
            )
        )
    return rows


@pytest.mark.parametrize("seed", [1, 2])
def test_the_usage_report_on_rollups_equals_the_raw_events(seed, customer_factory, meter_factory, price_factory):
    rng = random.Random(seed)
    meters = [meter_factory(), meter_factory(aggregation=Meter.Aggregation.MAX)]
    metered = price_factory(usage_type="metered", meter=meters[0], unit_amount=Decimal(3))
    customers = [
        customer_factory(country=rng.choice(("FR", "DE")), currency=rng.choice(("EUR", "USD")), livemode=index != 0)
        for index in range(5)
    ]
    usage_events_insert(rows=_events(rng, customers, meters, 400))

    for filters in (
        ReportFilters(start=date(2026, 1, 1), end=date(2026, 6, 1)),
        ReportFilters(start=date(2026, 3, 1), end=date(2026, 3, 1)),
        ReportFilters(start=date(2026, 1, 1), end=date(2026, 9, 1), country="FR"),
        ReportFilters(start=date(2026, 1, 1), end=date(2026, 9, 1), currency="USD"),
        ReportFilters(start=date(2026, 1, 1), end=date(2026, 9, 1), plan=metered.pk),
        ReportFilters(start=date(2026, 1, 1), end=date(2026, 9, 1), customer=customers[1].pk),
        ReportFilters(start=date(2026, 1, 1), end=date(2026, 9, 1), livemode=False),
    ):
        rows = selectors.usage_by_meter(filters=filters)
        assert rows == selectors.usage_by_meter_live(filters=filters), filters
    assert (
        sum(
            row.events
            for row in selectors.usage_by_meter(filters=YEAR.with_months(start=date(2026, 1, 1), end=date(2026, 6, 1)))
        )
        > 50
    )


def test_events_missing_from_the_rollups_would_be_seen(customer_factory, meter_factory):
    """The negative control: raw events written without their rollups make the two differ
    (on a whole day; the partial first and last days read raw events)."""
    meter, customer = meter_factory(), customer_factory()
    usage_events_insert(rows=_events(random.Random(3), [customer], [meter], 50))
    filters = ReportFilters(start=date(2025, 12, 1), end=date(2026, 12, 1))
    assert selectors.usage_by_meter(filters=filters) == selectors.usage_by_meter_live(filters=filters)

    UsageEvent.objects.bulk_create(
        [UsageEvent(customer=customer, meter=meter, external_id="no-rollup", timestamp=paris(2026, 2, 10), value=5)]
    )

    assert selectors.usage_by_meter(filters=filters) != selectors.usage_by_meter_live(filters=filters)


def test_time_of_refresh_is_the_as_of_of_the_exports(customer_factory, price_factory, brand_factory, tax_rates):
    random_history(13, customer_factory, price_factory, brand_factory)
    with time_machine.travel(datetime(2026, 9, 2, 8, 0, tzinfo=UTC), tick=False):
        report_summaries_refresh()
    table = REPORTS["invoices-by-status"].build(YEAR)
    assert table.as_of is not None
    assert table.as_of.at == datetime(2026, 9, 2, 8, 0, tzinfo=UTC)
    assert table.as_of.next_refresh is not None


def test_a_report_page_shows_its_first_rows_and_says_the_files_have_all(
    console_as, customer_factory, meter_factory, monkeypatch
):
    from reports import admin as reports_admin

    monkeypatch.setattr(reports_admin, "SCREEN_ROWS", 2)
    meter = meter_factory(name="API calls")
    customers = [customer_factory(legal_name=f"Usage customer {index}") for index in range(3)]
    usage_events_insert(
        rows=[
            UsageEvent(customer=customer, meter=meter, external_id=f"cut-{index}", timestamp=paris(2026, 2, 10))
            for index, customer in enumerate(customers)
        ]
    )
    client = console_as("Finance")

    page = client.get("/admin/reports/dashboard/usage/?start=2026-02&end=2026-02").content.decode()
    export = client.get("/admin/reports/dashboard/usage/export.csv?start=2026-02&end=2026-02")

    # The usage page: the meter's total row, then its customers (issue 20: the top ones only).
    assert page.count('<td class="tarif-col-text">Usage customer') == 1
    assert "The first 2 rows of 4 are shown" in page
    assert len(b"".join(export.streaming_content).decode("utf-8-sig").splitlines()) == 1 + 3
