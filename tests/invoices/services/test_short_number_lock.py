"""Issue 20: the bulk issue holds its number series' lock only to number the chunk.

Invoices, lines, balance transactions and events are written first, as drafts without a
number that only their transaction sees; the series is locked at the end, the numbers,
issue instants, content hashes and chain links are computed in Python and written with one
set-based UPDATE each. Gapless, unique and chronological, also with chunks racing.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import transaction

from config.events.models import DomainEvent
from config.ops.integrity import integrity_verify
from invoices.errors import InvoiceError
from invoices.ledger.models import AccountingPeriod, JournalEntry, JournalLine
from invoices.ledger.postings import NUMBER_PLACEHOLDER
from invoices.ledger.services import chart_load
from invoices.models import BalanceTransaction, Invoice, NumberSequence
from invoices.services import finalize
from invoices.services.balance import balance_adjust
from invoices.services.documents import InvoiceContentHasher, canonical_json, invoice_content_hash
from invoices.services.finalize import BulkNumbering, invoices_issue_bulk, invoices_number_bulk
from tests.invoices.helpers import ISSUED_AT, draft_for, issue, sequence_number
from tests.invoices.services.test_concurrency import run_in_threads

pytestmark = pytest.mark.django_db

CHECKS = ["numbering", "immutability", "chain", "totals"]


def assert_series_sound() -> list[Invoice]:
    """Gapless, number order = date order, valid hashes and chain; events name the numbers."""
    assert integrity_verify(checks=CHECKS) == {check: [] for check in CHECKS}
    invoices = sorted(Invoice.objects.exclude(status="draft"), key=lambda invoice: sequence_number(invoice.number))
    assert [sequence_number(invoice.number) for invoice in invoices] == list(range(1, len(invoices) + 1))
    dates = [invoice.finalized_at for invoice in invoices]
    assert dates == sorted(dates), "a later number carries an earlier date"
    numbers = {str(invoice.pk): invoice.number for invoice in invoices}
    events = DomainEvent.objects.filter(object_type="invoice", type="invoice.finalized")
    assert {event.object_id: event.data["number"] for event in events} == numbers
    by_pk = {invoice.pk: invoice for invoice in invoices}
    for event in events:
        assert event.occurred_at == by_pk[int(event.object_id)].finalized_at
    return invoices


def test_content_hasher_gives_the_content_hash_of_the_numbered_invoice(customer, fr_vat):
    # given an issued invoice whose lines hold quotes, unicode and the word "number"
    invoice = issue(customer, [1000, 250])
    lines = list(invoice.lines.order_by("position", "pk"))
    for line in lines:
        line.description = 'Été "number": {"x"} \\ 5'
    snapshot_json = canonical_json(invoice.issued_snapshot)

    # when its hash is prepared without the number, then finished with it
    hasher = InvoiceContentHasher(invoice=invoice, lines=lines, snapshot_json=snapshot_json)

    # then it is the full content hash for that number, and differs for another number
    assert hasher.for_number(invoice.number) == invoice_content_hash(invoice=invoice, lines=lines)
    assert hasher.for_number(invoice.number + "0") != invoice_content_hash(invoice=invoice, lines=lines)


def test_bulk_issue_writes_numbers_hashes_chain_and_event_numbers(customer_factory, brand, fr_vat):
    # given a series that issued one invoice, and three customers, one holding 5.00 of credit
    issue(customer_factory(brand=brand))
    customers = [customer_factory(brand=brand) for _ in range(3)]
    balance_adjust(customer=customers[0], currency="EUR", amount=500, description="Credit", at=ISSUED_AT)

    # when a chunk is issued in bulk
    ids = invoices_issue_bulk(items=[(draft_for(c, [1000]), c) for c in customers], at=ISSUED_AT)

    # then the chunk holds numbers 2..4 in order, hashed, chained, and named by their events
    invoices = assert_series_sound()
    assert [invoice.pk for invoice in invoices[1:]] == ids
    applied = BalanceTransaction.objects.get(invoice_id=ids[0], kind=BalanceTransaction.Kind.APPLIED_TO_INVOICE)
    assert invoices[1].number in applied.description
    assert applied.created_at == invoices[1].finalized_at
    # and their sales entries, posted before the numbering, carry the numbers in place of the
    # placeholder: document number, entry label and the receivable line's label
    for invoice in invoices[1:]:
        entry = JournalEntry.objects.get(source_type="invoice", source_id=invoice.pk, movement="invoice_finalized")
        assert entry.document_number == invoice.number
        assert entry.label == f"Invoice {invoice.number}"
        assert entry.date == invoice.finalized_at.date()
        assert entry.lines.filter(label=f"Invoice {invoice.number}").exists()
    assert not JournalEntry.objects.filter(label__contains=NUMBER_PLACEHOLDER).exists()
    assert not JournalLine.objects.filter(label__contains=NUMBER_PLACEHOLDER).exists()


def test_a_chunk_dated_before_its_series_last_issue_is_redated_with_its_snapshot(customer_factory, brand, fr_vat):
    # given a series whose last invoice was issued just after midnight in Paris
    midnight_paris = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)
    issue(customer_factory(brand=brand), at=midnight_paris + timedelta(seconds=60))
    customers = [customer_factory(brand=brand) for _ in range(2)]

    # when a chunk read its time two minutes earlier (the day before, in Paris)
    invoices_issue_bulk(items=[(draft_for(c), c) for c in customers], at=midnight_paris - timedelta(seconds=60))

    # then it is dated at the series' last issue, its snapshot says the new day, and all verifies
    invoices = assert_series_sound()
    for invoice in invoices[1:]:
        assert invoice.finalized_at == midnight_paris + timedelta(seconds=60)
        assert invoice.issued_snapshot["issue_date"] == "2026-03-11"
        # and its sales entry (posted before the lock, on the day before) moved to the new day
        entry = JournalEntry.objects.get(source_type="invoice", source_id=invoice.pk, movement="invoice_finalized")
        assert (entry.date, entry.document_date) == (date(2026, 3, 11), date(2026, 3, 11))
        assert entry.document_number == invoice.number


@pytest.mark.parametrize("failing", ["events_record_bulk", "post_invoices_finalized", "invoice_entries_number"])
def test_a_chunk_failing_after_its_copy_leaves_no_gap(customer_factory, brand, fr_vat, monkeypatch, failing):
    # given a series that issued one invoice, and a chunk whose issue fails after the COPY:
    # before the numbering (recording its events, posting its ledger entries) or after it
    # (numbering its ledger entries)
    issue(customer_factory(brand=brand))
    customers = [customer_factory(brand=brand) for _ in range(3)]

    def fail(**kwargs):
        raise RuntimeError("the worker died")

    monkeypatch.setattr(finalize, failing, fail)

    # when it is issued, it fails and its transaction rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        invoices_issue_bulk(items=[(draft_for(c), c) for c in customers], at=ISSUED_AT)
    monkeypatch.undo()

    # then nothing of it remains and the next chunk continues at number 2: no gap
    assert Invoice.objects.count() == 1
    assert NumberSequence.objects.get().last_value == 1
    invoices_issue_bulk(items=[(draft_for(c), c) for c in customers], at=ISSUED_AT)
    assert [sequence_number(invoice.number) for invoice in assert_series_sound()] == [1, 2, 3, 4]


def test_numbering_refuses_invoices_it_did_not_insert_unnumbered(customer_factory, brand, fr_vat):
    # given a chunk numbered once
    customers = [customer_factory(brand=brand) for _ in range(2)]
    batch = BulkNumbering()
    with transaction.atomic():
        invoices_issue_bulk(items=[(draft_for(c), c) for c in customers], at=ISSUED_AT, numbering=batch)
        invoices_number_bulk(numbering=batch)

    # when the same entries are numbered again (a caller kept a savepoint's batch it rolled back)
    with pytest.raises(InvoiceError, match="unnumbered"), transaction.atomic():
        invoices_number_bulk(numbering=batch)

    # then the series keeps its two numbers
    assert NumberSequence.objects.get().last_value == 2
    assert_series_sound()


@pytest.mark.django_db(transaction=True)
def test_racing_chunks_of_one_brand_stay_gapless_chronological_and_chained(
    postgres_only, customer_factory, brand, fr_vat
):
    # given four chunks of 15 customers of one brand, their clocks read seconds apart,
    # some customers holding credit (their balance rows name the invoice numbers)
    chunks = [[customer_factory(brand=brand) for _ in range(15)] for _ in range(4)]
    for chunk in chunks:
        balance_adjust(customer=chunk[0], currency="EUR", amount=300, description="Credit", at=ISSUED_AT)

    def bulk(customers, at):
        def job():
            with transaction.atomic():
                return invoices_issue_bulk(items=[(draft_for(c), c) for c in customers], at=at)

        return job

    # when the four chunks are issued at once
    _, errors = run_in_threads(
        [bulk(chunk, ISSUED_AT + timedelta(seconds=index)) for index, chunk in enumerate(chunks)]
    )

    # then numbers 1..60 with dates in number order, hashes and chain valid, events numbered
    assert errors == []
    assert len(assert_series_sound()) == 60
    for row in BalanceTransaction.objects.filter(kind=BalanceTransaction.Kind.APPLIED_TO_INVOICE):
        assert row.invoice.number in row.description


@pytest.mark.django_db(transaction=True)
def test_a_chunk_copies_while_another_holds_its_inserted_invoices_unnumbered(
    postgres_only, customer_factory, brand, fr_vat
):
    # given chunk A inserted (COPY) and posted its ledger entries, and left its invoices
    # unnumbered, its transaction open. The brand's books are set up (chart, settings) and the
    # month's accounting period exists, as the daily validation creates it ahead: a chunk
    # inserting one of those rows would hold its key until it commits
    chart_load(brand=brand)
    AccountingPeriod.objects.create(brand=brand, livemode=True, month=date(2026, 3, 1))
    first = [customer_factory(brand=brand) for _ in range(3)]
    second = [customer_factory(brand=brand) for _ in range(3)]
    inserted, b_done = threading.Event(), threading.Event()

    def chunk_a():
        with transaction.atomic():
            batch = BulkNumbering()
            invoices_issue_bulk(items=[(draft_for(c), c) for c in first], at=ISSUED_AT, numbering=batch)
            inserted.set()
            # The series is not locked yet: chunk B must be able to issue and commit meanwhile.
            assert b_done.wait(timeout=30), "chunk B waited for chunk A"
            invoices_number_bulk(numbering=batch)
        return "a"

    def chunk_b():
        assert inserted.wait(timeout=30)
        with transaction.atomic():
            invoices_issue_bulk(items=[(draft_for(c), c) for c in second], at=ISSUED_AT)
        b_done.set()
        return "b"

    # when both run
    _, errors = run_in_threads([chunk_a, chunk_b])

    # then B (committed first) holds 1..3, A 4..6, and the series verifies
    assert errors == []
    invoices = assert_series_sound()
    assert [invoice.customer_id for invoice in invoices] == [c.pk for c in second + first]
