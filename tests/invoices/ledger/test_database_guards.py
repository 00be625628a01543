"""The ledger's guards on PostgreSQL: balance at commit, append-only, closed periods (with negative controls)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import DatabaseError, connection, transaction

from invoices.ledger.models import Account, AccountingPeriod, JournalEntry, JournalLine
from invoices.ledger.services import chart_load

pytestmark = pytest.mark.usefixtures("postgres_only")


def _entry(brand, *, day=date(2026, 3, 10), number=None, source_id=1):
    return JournalEntry.objects.create(
        brand=brand,
        livemode=True,
        journal="OD",
        fiscal_year=day.year,
        number=number,
        date=day,
        label="raw",
        source_type="test",
        source_id=source_id,
        movement="raw",
        currency="EUR",
        functional_currency="EUR",
        created_at=datetime(2026, 3, 10, tzinfo=UTC),
    )


def _lines(entry, debit_account, credit_account, debit, credit):
    JournalLine.objects.bulk_create(
        [
            JournalLine(entry=entry, account=debit_account, debit=debit, functional_debit=debit),
            JournalLine(entry=entry, account=credit_account, credit=credit, functional_credit=credit),
        ]
    )


def _check_now():
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.fixture
def accounts(brand):
    chart_load(brand=brand)
    return Account.objects.get(brand=brand, code="411"), Account.objects.get(brand=brand, code="706")


def test_a_raw_unbalanced_insert_fails_at_commit(brand, accounts):
    receivable, revenue = accounts

    with pytest.raises(DatabaseError, match="unbalanced"), transaction.atomic():
        entry = _entry(brand)
        _lines(entry, receivable, revenue, 1000, 999)
        _check_now()


def test_negative_control_a_balanced_raw_insert_passes(brand, accounts):
    receivable, revenue = accounts
    entry = _entry(brand)
    _lines(entry, receivable, revenue, 1000, 1000)

    _check_now()  # no error: the trigger accepts what balances

    assert entry.lines.count() == 2


def test_an_entry_without_lines_fails_at_commit(brand, accounts):
    with pytest.raises(DatabaseError, match="line"), transaction.atomic():
        _entry(brand)
        _check_now()


def test_a_line_added_later_cannot_unbalance_a_posted_entry(brand, accounts):
    receivable, revenue = accounts
    entry = _entry(brand)
    _lines(entry, receivable, revenue, 1000, 1000)
    _check_now()

    with pytest.raises(DatabaseError, match="unbalanced"), transaction.atomic():
        JournalLine.objects.create(entry=entry, account=receivable, debit=1, functional_debit=1)
        _check_now()


def test_entries_and_lines_are_append_only(brand, accounts):
    receivable, revenue = accounts
    entry = _entry(brand)
    _lines(entry, receivable, revenue, 1000, 1000)

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalLine.objects.filter(entry=entry).update(debit=5)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalEntry.objects.filter(pk=entry.pk).update(label="changed")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalLine.objects.filter(entry=entry).delete()


def test_the_database_refuses_an_entry_dated_in_a_closed_month(brand, accounts, staff_factory):
    receivable, revenue = accounts
    AccountingPeriod.objects.create(
        brand=brand,
        livemode=True,
        month=date(2026, 2, 1),
        state="closed",
        closed_by=staff_factory(),
        approved_by=staff_factory(),
    )

    with pytest.raises(DatabaseError, match="closed"), transaction.atomic():
        _entry(brand, day=date(2026, 2, 27))
    # negative control: the open month next to it takes entries
    entry = _entry(brand, day=date(2026, 3, 1), source_id=2)
    _lines(entry, receivable, revenue, 10, 10)
    _check_now()


def test_one_statement_of_many_entries_is_refused_whole_if_one_is_in_a_closed_month(brand, accounts, staff_factory):
    # The open-period check runs once per statement (a billing run COPYs its chunk's entries).
    AccountingPeriod.objects.create(
        brand=brand,
        livemode=True,
        month=date(2026, 2, 1),
        state="closed",
        closed_by=staff_factory(),
        approved_by=staff_factory(),
    )

    def entries(*days):
        return [
            JournalEntry(
                brand=brand,
                livemode=True,
                journal="OD",
                fiscal_year=day.year,
                date=day,
                label="raw",
                source_type="test",
                source_id=10 + index,
                movement="raw",
                currency="EUR",
                functional_currency="EUR",
                created_at=datetime(2026, 3, 10, tzinfo=UTC),
            )
            for index, day in enumerate(days)
        ]

    with pytest.raises(DatabaseError, match="2026-02-01 is closed"), transaction.atomic():
        JournalEntry.objects.bulk_create(entries(date(2026, 4, 2), date(2026, 2, 27), date(2026, 5, 3)))
    assert not JournalEntry.objects.filter(source_type="test").exists()
    # negative control: the same statement without the closed month goes in, and opens its months
    receivable, revenue = accounts
    for entry in JournalEntry.objects.bulk_create(entries(date(2026, 4, 2), date(2026, 5, 3), date(2026, 5, 4))):
        _lines(entry, receivable, revenue, 10, 10)
    _check_now()
    assert set(
        AccountingPeriod.objects.filter(brand=brand, livemode=True, state="open").values_list("month", flat=True)
    ) >= {date(2026, 4, 1), date(2026, 5, 1)}


def test_truncate_of_the_journal_is_refused(brand, accounts):
    with pytest.raises(DatabaseError, match="TRUNCATE refused"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL tarif.allow_truncate = off")
            cursor.execute("TRUNCATE ledger_journalline")
