"""Number order is date order (issue 13, hole 9): the issue time is taken under the sequence lock.

French law wants one chronological, continuous series: an invoice numbered after another
never carries an earlier issue instant or date. These race tests run 32 finalizers at once on
PostgreSQL, each on its own connection, with a clock that moves between readings (and across
local midnight in the brand's time zone), so a reading taken before the lock loses the race.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction

from config import clock
from invoices.ledger.postings import ledger_brand_ready
from invoices.models import Invoice
from invoices.services.finalize import invoice_finalize, invoices_issue_bulk
from tests.invoices.helpers import create_draft, draft_for, sequence_number
from tests.invoices.services.test_concurrency import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)

FINALIZERS = 32
AUCKLAND = ZoneInfo("Pacific/Auckland")
# 00:00 on 10 March 2026 in Auckland (UTC+13) is 11:00 UTC on the 9th: local and UTC dates differ.
LOCAL_MIDNIGHT = datetime(2026, 3, 10, tzinfo=AUCKLAND)
# Where the race starts for finalizers that read the clock themselves: see `race_start`.
RACE_START = LOCAL_MIDNIGHT.astimezone(UTC) - timedelta(seconds=4.8)
# A caller that passes `at` (the API's old way, a billing-run chunk) reads the clock once:
# 32 readings, midnight at the 17th.
ONE_READING_RACE_START = LOCAL_MIDNIGHT.astimezone(UTC) - timedelta(seconds=1.6)


def ledger_ready(brand) -> None:
    """The brand's chart and the race's accounting periods, created before the race (as a brand's
    ledger is once it has posted). Created in the race, the first finalizer's transaction holds
    them until it commits and the 31 others wait for it before their series lock, which is not
    the interleaving the stepping clock's arithmetic counts on."""
    for day in (RACE_START, LOCAL_MIDNIGHT):
        ledger_brand_ready(brand_id=brand.pk, at=day)


def race_start(readings: int) -> datetime:
    """Where 32 finalizers that each read the clock `readings` times straddle local midnight.

    At least one of a finalizer's readings is under its series lock (the issue time), at most
    `readings - 1` come before it. Whatever the interleaving, the first issue reading is at
    position 32 * (readings - 1) + 1 at the latest, and the last one at 31 * readings + 1 at the
    earliest (only the last holder's later readings follow it). Midnight between the two, the
    race always straddles it. (With two readings each this was the old fixed start, 4.8 s before;
    the ledger's posting and the credit plan added two, and the fixed start straddled only by luck.)
    """
    first_issue_at_latest = FINALIZERS * (readings - 1) + 1
    last_issue_at_earliest = (FINALIZERS - 1) * readings + 1
    assert first_issue_at_latest < last_issue_at_earliest, f"{readings} readings per finalizer: no sure straddle"
    before_midnight = (first_issue_at_latest + last_issue_at_earliest) // 2
    return LOCAL_MIDNIGHT.astimezone(UTC) - timedelta(milliseconds=100 * before_midnight)


def readings_per_finalization(stepping_clock, draft) -> int:
    """How many times one finalization reads the clock (on its own brand, before the race)."""
    stepping_clock.restart(RACE_START)
    stepping_clock.readings = 0
    with transaction.atomic():
        invoice_finalize(invoice=draft)
    return stepping_clock.readings


class SteppingClock:
    """A clock that moves 100 ms at every reading, whichever thread reads it."""

    def __init__(self, start: datetime) -> None:
        self._next = start
        self._lock = threading.Lock()
        self.readings = 0

    def restart(self, start: datetime) -> None:
        """Set the clock back to `start`: the race begins there, whatever setting it up read."""
        with self._lock:
            self._next = start

    def __call__(self, *args: object, **kwargs: object) -> datetime:
        with self._lock:
            self.readings += 1
            moment, self._next = self._next, self._next + timedelta(milliseconds=100)
            return moment


@pytest.fixture
def stepping_clock(monkeypatch):
    # Tests restart it just before the race, so building the drafts uses none of the margin.
    fake = SteppingClock(RACE_START)
    monkeypatch.setattr(clock, "now", fake)
    monkeypatch.setattr(clock, "system_now", fake)
    return fake


@pytest.fixture(autouse=True)
def no_pdfs(settings):
    settings.TARIF_RENDER_DOCUMENTS = False  # 32 PDFs rendered inline would only slow the race down


@pytest.fixture
def auckland_brand(brand_factory, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    return brand_factory(timezone="Pacific/Auckland")


def issued_in_number_order(brand) -> list[Invoice]:
    invoices = list(Invoice.objects.filter(brand=brand).exclude(number=None))
    return sorted(invoices, key=lambda invoice: sequence_number(invoice.number))


def assert_number_order_is_date_order(invoices: list[Invoice]) -> None:
    assert [sequence_number(invoice.number) for invoice in invoices] == list(range(1, len(invoices) + 1))
    instants = [invoice.finalized_at for invoice in invoices]
    out_of_order = [
        (earlier.number, later.number)
        for earlier, later in zip(invoices, invoices[1:], strict=False)
        if later.finalized_at < earlier.finalized_at
    ]
    assert out_of_order == [], f"later numbers carry earlier issue instants: {out_of_order}"
    assert instants == sorted(instants)
    # the printed issue date is the local date in the brand's zone, and never goes backwards either
    dates = [date.fromisoformat(invoice.issued_snapshot["issue_date"]) for invoice in invoices]
    assert dates == [invoice.finalized_at.astimezone(AUCKLAND).date() for invoice in invoices]
    assert dates == sorted(dates)


def test_32_finalizers_reading_the_clock_before_the_lock_still_number_in_date_order(
    postgres_only, stepping_clock, customer_factory, auckland_brand
):
    # given 32 drafts of one brand, each finalized the way the API and the console call it:
    # the clock is read by the caller, before any lock is taken
    drafts = [create_draft(customer_factory(brand=auckland_brand), [1000]) for _ in range(FINALIZERS)]
    ledger_ready(auckland_brand)

    def finalize(draft):
        def job():
            at = clock.now()
            with transaction.atomic():
                return invoice_finalize(invoice=draft, at=at).number

        return job

    # when all 32 finalize at once (one reading each, by the caller)
    stepping_clock.restart(ONE_READING_RACE_START)
    _, errors = run_in_threads([finalize(draft) for draft in drafts])

    # then sorting by number sorts by issue instant and by local issue date
    assert errors == []
    assert_number_order_is_date_order(issued_in_number_order(auckland_brand))


# Who wins each lock is up to the threads, so one race may not straddle midnight (for example
# when a post-midnight reader wins the first lock, which dates everyone after it): a test races
# again, on a fresh brand, until one does, checking number order on every race.
STRADDLE_ATTEMPTS = 5
BOTH_SIDES = {date(2026, 3, 9), date(2026, 3, 10)}


def issue_dates(invoices: list[Invoice]) -> set[date]:
    return {date.fromisoformat(invoice.issued_snapshot["issue_date"]) for invoice in invoices}


def test_32_finalizers_across_local_midnight_take_the_issue_time_under_the_lock(
    postgres_only, stepping_clock, customer_factory, auckland_brand, brand_factory
):
    def finalize(draft):
        def job():
            with transaction.atomic():
                return invoice_finalize(invoice=draft).number

        return job

    calibration = brand_factory(timezone="Pacific/Auckland")
    ledger_ready(calibration)
    start = race_start(readings_per_finalization(stepping_clock, create_draft(customer_factory(brand=calibration))))
    seen: list[set[date]] = []
    for attempt in range(STRADDLE_ATTEMPTS):
        brand = auckland_brand if attempt == 0 else brand_factory(timezone="Pacific/Auckland")
        # given 32 drafts finalized with no caller-supplied time (the service reads the clock)
        drafts = [create_draft(customer_factory(brand=brand), [1000]) for _ in range(FINALIZERS)]
        ledger_ready(brand)

        # when all 32 finalize at once while the clock passes midnight in Auckland
        stepping_clock.restart(start)
        _, errors = run_in_threads([finalize(draft) for draft in drafts])

        # then numbers, instants and local dates all go the same way, on both sides of midnight
        assert errors == []
        invoices = issued_in_number_order(brand)
        assert_number_order_is_date_order(invoices)
        seen.append(issue_dates(invoices))
        if seen[-1] == BOTH_SIDES:
            break
    assert BOTH_SIDES in seen, f"no race straddled local midnight: {seen}"


def test_32_bulk_finalizers_across_local_midnight_number_in_date_order(
    postgres_only, stepping_clock, customer_factory, auckland_brand, brand_factory
):
    def bulk(customer):
        def job():
            at = clock.system_now()
            with transaction.atomic():
                return invoices_issue_bulk(items=[(draft_for(customer), customer)], at=at)

        return job

    seen: list[set[date]] = []
    for attempt in range(STRADDLE_ATTEMPTS):
        brand = auckland_brand if attempt == 0 else brand_factory(timezone="Pacific/Auckland")
        # given 32 billing-run chunks of one customer each, each reading the clock before the call
        customers = [customer_factory(brand=brand) for _ in range(FINALIZERS)]
        ledger_ready(brand)

        # when they all run at once, across local midnight
        stepping_clock.restart(ONE_READING_RACE_START)
        _, errors = run_in_threads([bulk(customer) for customer in customers])

        # then number order is date order
        assert errors == []
        invoices = issued_in_number_order(brand)
        assert_number_order_is_date_order(invoices)
        seen.append(issue_dates(invoices))
        if seen[-1] == BOTH_SIDES:
            break
    assert BOTH_SIDES in seen, f"no race straddled local midnight: {seen}"


def test_a_wait_across_new_year_takes_a_number_of_the_new_years_series(monkeypatch, customer_factory, auckland_brand):
    # given the year ends in Auckland while a finalization waits for the series lock:
    # the clock reads 31 December before the lock, 1 January once it holds the lock
    new_year = datetime(2027, 1, 1, tzinfo=AUCKLAND).astimezone(UTC)
    fake = SteppingClock(new_year - timedelta(milliseconds=50))
    monkeypatch.setattr(clock, "now", fake)
    monkeypatch.setattr(clock, "system_now", fake)
    draft = create_draft(customer_factory(brand=auckland_brand), [1000])

    # when it is finalized with no caller-supplied time
    invoice = invoice_finalize(invoice=draft)

    # then it is the first invoice of 2027, dated 2027 in the brand's zone, not the last of 2026
    assert invoice.number.endswith("-2027-000001")
    assert invoice.issued_snapshot["issue_date"] == "2027-01-01"
    assert invoice.finalized_at >= new_year
