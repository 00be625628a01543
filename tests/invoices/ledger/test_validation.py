"""Entries are numbered at validation (the "brouillard" → validation of French bookkeeping).

Posting writes entries without a number and takes no exclusive lock; `ledger_entries_validate`
numbers them continuously per journal and fiscal year, in (date, id) order, chronologically by
validation; a close validates its month first; the FEC lists validated entries only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from config.locking import LockRank, locks_held
from invoices.ledger.exports import fec_export
from invoices.ledger.fec import fec_check, fec_read
from invoices.ledger.models import AccountingPeriod, JournalEntry, JournalSequence, Role
from invoices.ledger.services import (
    AccountKey,
    EntryDraft,
    accounting_period_close_approve,
    accounting_period_close_request,
    entries_post,
    ledger_entries_validate,
    ledger_validate_all,
)
from tests.invoices.helpers import ISSUED_AT, issue

pytestmark = pytest.mark.django_db
YEAR = {"fiscal_year_start": date(2026, 1, 1), "fiscal_year_end": date(2026, 12, 31)}


def _post(brand, *, day: date, source_id: int, journal: str = "OD", livemode: bool = True) -> JournalEntry:
    draft = EntryDraft(
        brand_id=brand.pk,
        livemode=livemode,
        journal=journal,
        day=day,
        label=f"movement {source_id}",
        source_type="test",
        source_id=source_id,
        movement="test",
        currency="EUR",
    )
    draft.add(AccountKey(Role.BANK), 1000, side="debit")
    draft.add(AccountKey(Role.REVENUE_SERVICES), 1000, side="credit")
    [entry] = entries_post(drafts=[draft])
    return entry


def _numbers(brand, journal="OD"):
    return list(
        JournalEntry.objects.filter(brand=brand, journal=journal)
        .order_by("number")
        .values_list("source_id", "number", "date")
    )


def test_posting_leaves_entries_unnumbered_and_takes_no_sequence_lock(brand, customer_factory, fr_vat):
    customer = customer_factory(brand=brand)
    with transaction.atomic():
        invoice = issue(customer, [1000])
        _post(brand, day=date(2026, 3, 10), source_id=1)
        held = locks_held()

    # the period is only shared (not in the lock order), the journal's numbers not touched
    assert LockRank.JOURNAL_SEQUENCE not in held and LockRank.ACCOUNTING_PERIOD not in held
    assert invoice.number and JournalEntry.objects.count() == 2
    assert not JournalEntry.objects.filter(number__isnull=False).exists()
    assert not JournalSequence.objects.exists()


def test_validation_numbers_per_journal_in_date_order_up_to_the_day(brand):
    # given entries posted out of date order, in two journals, and one after the cut-off day
    _post(brand, day=date(2026, 3, 12), source_id=1)
    _post(brand, day=date(2026, 3, 10), source_id=2)
    _post(brand, day=date(2026, 3, 11), source_id=3, journal="BQ")
    _post(brand, day=date(2026, 3, 20), source_id=4)

    # when the books are validated up to March 15
    count = ledger_entries_validate(brand=brand, livemode=True, up_to=date(2026, 3, 15))

    # then the entries up to that day are numbered from 1 per journal, in date order; the later one waits
    assert count == 3
    assert _numbers(brand) == [(2, 1, date(2026, 3, 10)), (1, 2, date(2026, 3, 12)), (4, None, date(2026, 3, 20))]
    assert _numbers(brand, "BQ") == [(3, 1, date(2026, 3, 11))]
    assert not JournalEntry.objects.filter(number__isnull=False, validated_at__isnull=True).exists()
    # and a second validation numbers nothing more
    assert ledger_entries_validate(brand=brand, livemode=True, up_to=date(2026, 3, 15)) == 0


def test_a_late_entry_is_numbered_after_the_earlier_validation(brand):
    # given March validated up to the 20th
    _post(brand, day=date(2026, 3, 10), source_id=1)
    _post(brand, day=date(2026, 3, 18), source_id=2)
    ledger_entries_validate(brand=brand, livemode=True, up_to=date(2026, 3, 20))

    # when an entry dated March 5 and one dated March 25 come in, then the next validation runs
    _post(brand, day=date(2026, 3, 25), source_id=3)
    _post(brand, day=date(2026, 3, 5), source_id=4)
    ledger_entries_validate(brand=brand, livemode=True, up_to=date(2026, 3, 31))

    # then numbering stays continuous: chronological by validation, date order within each validation
    assert [(source, number) for source, number, _day in _numbers(brand)] == [(1, 1), (2, 2), (4, 3), (3, 4)]


def test_modes_and_brands_have_their_own_numbers(brand, brand_factory):
    other = brand_factory(slug="other-books")
    _post(brand, day=date(2026, 3, 10), source_id=1)
    _post(brand, day=date(2026, 3, 10), source_id=2, livemode=False)
    _post(other, day=date(2026, 3, 10), source_id=3)

    ledger_entries_validate(brand=brand, livemode=True, up_to=date(2026, 3, 31))

    assert JournalEntry.objects.get(source_id=1).number == 1
    assert JournalEntry.objects.get(source_id=2).number is None  # test mode: not asked
    assert JournalEntry.objects.get(source_id=3).number is None  # another brand: not asked


def test_the_daily_task_validates_up_to_the_lag(brand, settings):
    settings.TARIF_LEDGER_VALIDATION_LAG_DAYS = 2
    _post(brand, day=date(2026, 3, 8), source_id=1)
    _post(brand, day=date(2026, 3, 9), source_id=2)

    ledger_validate_all(today=date(2026, 3, 10))

    assert [(source, number) for source, number, _day in _numbers(brand)] == [(1, 1), (2, None)]
    assert AccountingPeriod.objects.filter(brand=brand, livemode=True, month=date(2026, 4, 1)).exists()


def test_a_close_validates_its_month_first(brand, staff_factory):
    _post(brand, day=date(2026, 2, 10), source_id=1)
    _post(brand, day=date(2026, 3, 2), source_id=2)
    first, second = staff_factory(), staff_factory()
    period = accounting_period_close_request(
        brand=brand, livemode=True, month=date(2026, 2, 1), requested_by=first, otp_verified_at=timezone.now()
    )

    accounting_period_close_approve(period=period, approver=second, otp_verified_at=timezone.now())

    assert [(source, number) for source, number, _day in _numbers(brand)] == [(1, 1), (2, None)]


def test_the_fec_validates_the_year_and_lists_validated_entries_only(brand, customer_factory, fr_vat):
    # given two rounds of validation with a late entry between them, and entries left to validate
    customer = customer_factory(brand=brand)
    issue(customer, [1000])
    _post(brand, day=date(2026, 3, 11), source_id=1)
    ledger_entries_validate(brand=brand, livemode=True, up_to=date(2026, 3, 31))
    _post(brand, day=date(2026, 3, 1), source_id=2)
    issue(customer, [2000], at=ISSUED_AT + timedelta(days=1))

    # when the FEC of 2026 is exported
    _name, chunks = fec_export(brand=brand, livemode=True, fiscal_year=2026)
    data = b"".join(chunks)

    # then it validated what was left, lists every entry, and passes every check (numbering, order)
    assert not JournalEntry.objects.filter(brand=brand, number__isnull=True).exists()
    assert fec_check(data, **YEAR) == []
    assert {row.entry_number for row in fec_read(data)} == {
        "VT2026-0000001",
        "VT2026-0000002",
        "OD2026-0000001",
        "OD2026-0000002",
    }


@pytest.mark.usefixtures("postgres_only")
def test_the_database_allows_only_the_validation_update(brand):
    entry = _post(brand, day=date(2026, 3, 10), source_id=1)
    stamp = datetime(2026, 3, 12, tzinfo=UTC)

    # negative controls: a number without its validation time, another column changed with it
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalEntry.objects.filter(pk=entry.pk).update(number=1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalEntry.objects.filter(pk=entry.pk).update(number=1, validated_at=stamp, label="changed")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalEntry.objects.filter(pk=entry.pk).update(label="changed")

    # the one update allowed: NULL -> number and validation time
    JournalEntry.objects.filter(pk=entry.pk).update(number=1, validated_at=stamp)

    # and never again: renumbering, un-validating and deleting are refused
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalEntry.objects.filter(pk=entry.pk).update(number=2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalEntry.objects.filter(pk=entry.pk).update(number=None, validated_at=None)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM ledger_journalentry WHERE id = %s", [entry.pk])
    assert JournalEntry.objects.get(pk=entry.pk).number == 1
    # and an entry cannot be written numbered without its validation time (check constraint)
    fields = {f.attname: getattr(entry, f.attname) for f in JournalEntry._meta.concrete_fields if f.attname != "id"}
    with pytest.raises(IntegrityError), transaction.atomic():
        JournalEntry.objects.create(**{**fields, "source_id": 99, "number": 7, "validated_at": None})
