"""Issue 20: a bulk issue posts its sales entries before it locks the number series.

The entries carry a placeholder where the invoice number goes and get the number once,
under the lock; the database lets exactly that change through (ledger migration 0005), and
nothing else (negative controls). The checks deferred to the commit run before the lock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from invoices.ledger.models import Account, JournalEntry, JournalLine
from invoices.ledger.postings import NUMBER_PLACEHOLDER
from invoices.ledger.services import chart_load
from invoices.services.finalize import _check_deferred_constraints

pytestmark = pytest.mark.usefixtures("postgres_only")


def _entry(brand, *, label, document_number="", source_id=1):
    entry = JournalEntry.objects.create(
        brand=brand,
        livemode=True,
        journal="VE",
        fiscal_year=2026,
        date=date(2026, 3, 10),
        label=label,
        source_type="invoice",
        source_id=source_id,
        movement="invoice_finalized",
        document_number=document_number,
        currency="EUR",
        functional_currency="EUR",
        created_at=datetime(2026, 3, 10, tzinfo=UTC),
    )
    receivable = Account.objects.get(brand=brand, code="411")
    revenue = Account.objects.get(brand=brand, code="706")
    JournalLine.objects.bulk_create(
        [
            JournalLine(entry=entry, account=receivable, debit=1000, functional_debit=1000, label=label),
            JournalLine(entry=entry, account=revenue, credit=1000, functional_credit=1000, label="Pro plan"),
        ]
    )
    return entry


@pytest.fixture
def books(brand):
    chart_load(brand=brand)
    return brand


def test_an_entry_posted_before_its_number_gets_it_once(books):
    # given an entry posted with the placeholder, committed
    entry = _entry(books, label=f"Invoice {NUMBER_PLACEHOLDER}")

    # when its number and dates are filled in
    JournalEntry.objects.filter(pk=entry.pk).update(
        document_number="F-1", label="Invoice F-1", date=date(2026, 3, 11), document_date=date(2026, 3, 11)
    )
    JournalLine.objects.filter(entry=entry, label__contains=NUMBER_PLACEHOLDER).update(label="Invoice F-1")

    # then they are stored
    entry.refresh_from_db()
    assert (entry.document_number, entry.label, entry.date) == ("F-1", "Invoice F-1", date(2026, 3, 11))
    assert sorted(entry.lines.values_list("label", flat=True)) == ["Invoice F-1", "Pro plan"]

    # and once the placeholder is gone, nothing changes them any more (negative controls)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalEntry.objects.filter(pk=entry.pk).update(document_number="F-2", label="Invoice F-2")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalLine.objects.filter(entry=entry, label="Invoice F-1").update(label="Invoice F-2")


def test_the_placeholder_lets_through_no_other_change(books):
    # given an entry still holding the placeholder, and a numbered one
    waiting = _entry(books, label=f"Invoice {NUMBER_PLACEHOLDER}")
    numbered = _entry(books, label="Invoice F-9", document_number="F-9", source_id=2)

    # then its amounts, mode or customer cannot change with the number (negative controls)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalEntry.objects.filter(pk=waiting.pk).update(document_number="F-1", currency="USD")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalLine.objects.filter(entry=waiting, label__contains=NUMBER_PLACEHOLDER).update(
            label="Invoice F-1", debit=2000
        )
    # and an entry posted with its number takes no document-number change at all
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalEntry.objects.filter(pk=numbered.pk).update(document_number="F-10", label="Invoice F-10")


def test_deferred_checks_run_before_the_lock_then_defer_again(books):
    # given a transaction that wrote a line pointing at no entry (its foreign key is deferred)
    with pytest.raises(IntegrityError), transaction.atomic():
        account = Account.objects.get(brand=books, code="411")
        JournalLine.objects.bulk_create([JournalLine(entry_id=987654321, account=account, debit=1)])
        # when the bulk issue runs the deferred checks before locking its series
        # then the violation is raised there, not at the commit
        _check_deferred_constraints()
        pytest.fail("the deferred foreign key was not checked")

    # and after it, checks are deferred again: an entry inserted before its lines (its balance
    # trigger would refuse it if it were checked at once) commits
    with transaction.atomic():
        _check_deferred_constraints()
        entry = _entry(books, label="Invoice F-3", document_number="F-3")
        assert entry.lines.count() == 2


def test_every_deferrable_constraint_is_initially_deferred(db):
    # `SET CONSTRAINTS ALL DEFERRED` after the early checks restores every constraint's own mode
    # only while no deferrable constraint or trigger is initially immediate
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE condeferrable AND NOT condeferred "
            "UNION ALL SELECT tgname FROM pg_trigger WHERE tgdeferrable AND NOT tginitdeferred"
        )
        assert cursor.fetchall() == []
