"""Period close (issue 19 item 4): four-eyes with fresh TOTP, closed months refused, races on PostgreSQL."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from invoices.ledger import services as ledger_services
from invoices.ledger.errors import PeriodCloseRefused
from invoices.ledger.models import AccountingPeriod, JournalEntry, Role
from invoices.ledger.services import (
    AccountKey,
    EntryDraft,
    accounting_period_close_approve,
    accounting_period_close_request,
    entries_post,
)
from tests.billing.services.test_races import race

FEBRUARY = date(2026, 2, 1)


def _draft(brand, *, day: date, source_id: int) -> EntryDraft:
    draft = EntryDraft(
        brand_id=brand.pk,
        livemode=True,
        journal="OD",
        day=day,
        label="test",
        source_type="test",
        source_id=source_id,
        movement="test",
        currency="EUR",
    )
    draft.add(AccountKey(Role.RECEIVABLE), 1000, side="debit")
    draft.add(AccountKey(Role.REVENUE_SERVICES), 1000, side="credit")
    return draft


def _close(brand, first, second):
    fresh = timezone.now()
    period = accounting_period_close_request(
        brand=brand, livemode=True, month=FEBRUARY, requested_by=first, otp_verified_at=fresh
    )
    return accounting_period_close_approve(period=period, approver=second, otp_verified_at=fresh)


@pytest.mark.django_db
def test_closing_needs_a_second_staff_member_and_fresh_codes(brand, staff_factory):
    first, second = staff_factory(), staff_factory()
    stale = timezone.now() - timedelta(hours=1)

    with pytest.raises(PeriodCloseRefused):
        accounting_period_close_request(
            brand=brand, livemode=True, month=FEBRUARY, requested_by=first, otp_verified_at=stale
        )
    period = accounting_period_close_request(
        brand=brand, livemode=True, month=FEBRUARY, requested_by=first, otp_verified_at=timezone.now()
    )
    with pytest.raises(PeriodCloseRefused, match="someone other"):
        accounting_period_close_approve(period=period, approver=first, otp_verified_at=timezone.now())
    with pytest.raises(PeriodCloseRefused):
        accounting_period_close_approve(period=period, approver=second, otp_verified_at=stale)

    closed = accounting_period_close_approve(period=period, approver=second, otp_verified_at=timezone.now())

    assert (closed.state, closed.closed_by, closed.approved_by) == ("closed", first, second)


@pytest.mark.django_db
def test_a_movement_in_a_closed_month_is_posted_on_the_first_day_of_the_next_open_one(brand, staff_factory):
    _close(brand, staff_factory(), staff_factory())

    [entry] = entries_post(drafts=[_draft(brand, day=date(2026, 2, 20), source_id=1)])

    assert entry.date == date(2026, 3, 1)


@pytest.mark.django_db
def test_a_non_staff_user_cannot_close(brand, user_factory):
    with pytest.raises(PeriodCloseRefused):
        accounting_period_close_request(
            brand=brand, livemode=True, month=FEBRUARY, requested_by=user_factory(), otp_verified_at=timezone.now()
        )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_closing_while_postings_run_never_lets_an_entry_into_the_closed_month(
    postgres_only, brand, staff_factory, monkeypatch
):
    # given a close requested for February, and postings dated in February that hold their share lock a while
    first, second = staff_factory(), staff_factory()
    period = accounting_period_close_request(
        brand=brand, livemode=True, month=FEBRUARY, requested_by=first, otp_verified_at=timezone.now()
    )
    entries_post(drafts=[_draft(brand, day=date(2026, 2, 2), source_id=0)])  # the chart and sequences exist
    share = ledger_services.accounting_periods_share

    def slow_share(**kwargs):
        states = share(**kwargs)
        time.sleep(0.2)
        return states

    monkeypatch.setattr(ledger_services, "accounting_periods_share", slow_share)

    def post(source_id):
        def call():
            with transaction.atomic():
                return entries_post(drafts=[_draft(brand, day=date(2026, 2, 25), source_id=source_id)])[0].date

        return call

    def approve():
        time.sleep(0.1)
        accounting_period_close_approve(period=period, approver=second, otp_verified_at=timezone.now())
        return JournalEntry.objects.filter(date__lt=date(2026, 3, 1)).count()

    # when the approval races four postings
    *dates, february_count_at_close = race(post(1), post(2), post(3), post(4), approve)

    # then every posting landed (in February before the close committed, else on March 1st),
    # and nothing entered February after it closed
    assert all(isinstance(day, date) for day in dates), dates
    assert set(dates) <= {date(2026, 2, 25), date(2026, 3, 1)}
    assert JournalEntry.objects.filter(date__lt=date(2026, 3, 1)).count() == february_count_at_close
    assert AccountingPeriod.objects.get(pk=period.pk).state == "closed"
