"""verify_integrity finds each kind of damage, and passes on sound data."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from config.ops.integrity import integrity_verify
from invoices.models import BalanceTransaction, NumberSequence
from tests.invoices.helpers import issue

pytestmark = pytest.mark.django_db


@pytest.fixture
def issued(customer, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    return [issue(customer, [1000, 250]), issue(customer, [500])]


def raw(sql: str, params: list) -> None:
    """Write behind the application's back (the database's own guards too, on PostgreSQL)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)


def violations(check: str) -> list[str]:
    return [str(violation) for violation in integrity_verify(checks=[check])[check]]


def test_sound_data_passes_with_exit_code_zero(issued):
    out = io.StringIO()

    call_command("verify_integrity", stdout=out)

    assert "Integrity verified: no violation." in out.getvalue()


def test_a_changed_amount_breaks_the_hash_and_the_totals_and_exits_non_zero(issued):
    raw("UPDATE invoices_invoice SET total = total + 1 WHERE id = %s", [issued[0].pk])
    out = io.StringIO()

    with pytest.raises(CommandError) as failed:
        call_command("verify_integrity", stdout=out)

    assert failed.value.returncode == 1
    report = out.getvalue()
    assert f"invoice {issued[0].number}: content differs from what was issued" in report
    assert "its total is 1501 but its lines give 1500" in report
    assert issued[1].number not in report


def test_a_number_counted_but_never_held_is_a_gap(issued):
    NumberSequence.objects.update(last_value=3)

    third = issued[1].number.replace("000002", "000003")
    assert any("gap" in text and third in text for text in violations("numbering"))


def test_a_number_beyond_the_counter_is_reported(issued):
    # (on PostgreSQL the counter never goes back, so only a write behind the triggers lowers it)
    raw("UPDATE invoices_numbersequence SET last_value = 1", [])

    assert any(issued[1].number in text and "outside" in text for text in violations("numbering"))


def test_amount_remaining_must_follow_due_paid_and_credits(issued):
    raw("UPDATE invoices_invoice SET amount_remaining = 7 WHERE id = %s", [issued[1].pk])

    assert any("amount remaining is 7" in text for text in violations("balances"))


def test_the_ledger_must_match_the_credit_applied(issued):
    BalanceTransaction.objects.create(
        customer=issued[0].customer,
        currency="EUR",
        amount=-100,
        kind=BalanceTransaction.Kind.APPLIED_TO_INVOICE,
        invoice=issued[0],
        created_at=issued[0].finalized_at,
    )

    found = violations("ledger")

    assert any("applied 0 of customer credit but the ledger shows 100" in text for text in found)
    assert any("negative" in text for text in found)


def test_a_changed_or_missing_pdf_is_reported(issued, settings, tmp_path):
    from invoices.services.pdf import invoice_document_store

    settings.MEDIA_ROOT = tmp_path
    document = invoice_document_store(invoice_id=issued[0].pk)
    path = tmp_path / document.file.name
    path.write_bytes(path.read_bytes() + b"%tampered")

    assert any("bytes changed" in text for text in violations("documents"))
    path.unlink()
    assert any("missing" in text for text in violations("documents"))


# -- the hash chain of each number series (issue 13, hole 11) -----------------------------


@pytest.fixture
def three_issued(customer, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    return [issue(customer, [1000 * n]) for n in (1, 2, 3)]


def test_sound_chains_pass(three_issued):
    assert violations("chain") == []
    assert all(invoice.chain_hash for invoice in three_issued)
    assert three_issued[1].chain_previous == three_issued[0].chain_hash


def test_a_deleted_invoice_breaks_the_chain_of_its_series(three_issued):
    middle = three_issued[1]
    raw("DELETE FROM invoices_invoiceline WHERE invoice_id = %s", [middle.pk])
    raw("DELETE FROM invoices_invoice WHERE id = %s", [middle.pk])

    found = violations("chain")

    assert any(middle.number in text and "missing" in text for text in found)
    assert any(three_issued[2].number in text and "does not link" in text for text in found)


def test_a_deleted_last_invoice_is_caught_by_the_chain_head(three_issued):
    last = three_issued[2]
    raw("DELETE FROM invoices_invoiceline WHERE invoice_id = %s", [last.pk])
    raw("DELETE FROM invoices_invoice WHERE id = %s", [last.pk])
    # even when the counter is put back too, so that no gap shows
    raw("UPDATE invoices_numbersequence SET last_value = 2", [])

    assert violations("numbering") == []
    assert any("chain head" in text for text in violations("chain"))


def test_a_consistent_rewrite_passes_the_content_hash_but_not_the_chain(three_issued):
    from invoices.models import Invoice
    from invoices.services.documents import invoice_content_hash

    # given someone with write access rewrites an amount AND recomputes the (unkeyed) sha256
    target = three_issued[0]
    raw("UPDATE invoices_invoiceline SET amount = amount - 100 WHERE invoice_id = %s", [target.pk])
    rewritten = Invoice.objects.get(pk=target.pk)
    rewritten.subtotal -= 100
    rewritten.total_excluding_tax -= 100
    rewritten.total -= 100
    content_hash = invoice_content_hash(invoice=rewritten, lines=rewritten.lines.order_by("position", "pk"))
    raw(
        "UPDATE invoices_invoice SET subtotal = subtotal - 100, total_excluding_tax = total_excluding_tax - 100, "
        "total = total - 100, content_hash = %s WHERE id = %s",
        [content_hash, target.pk],
    )

    # then the content hash alone is fooled (the negative control) ...
    assert not any(target.number in text for text in violations("immutability"))
    # ... but the keyed chain is not
    assert any(target.number in text and "rewritten" in text for text in violations("chain"))


def test_swapping_two_invoices_numbers_breaks_the_chain(three_issued):
    first, second = three_issued[0], three_issued[1]
    raw("UPDATE invoices_invoice SET number = 'SWAP' WHERE id = %s", [first.pk])
    raw("UPDATE invoices_invoice SET number = %s WHERE id = %s", [first.number, second.pk])
    raw("UPDATE invoices_invoice SET number = %s WHERE id = %s", [second.number, first.pk])

    assert any(first.number in text for text in violations("chain"))


def test_a_deleted_credit_note_breaks_its_series_chain(three_issued):
    from invoices.services.credit_notes import credit_note_create

    notes = [credit_note_create(invoice=three_issued[n], amount=100, reason="other") for n in (0, 1)]
    assert violations("chain") == []
    raw("DELETE FROM invoices_creditnoteline WHERE credit_note_id = %s", [notes[0].pk])
    raw("DELETE FROM invoices_balancetransaction WHERE credit_note_id = %s", [notes[0].pk])
    raw("DELETE FROM invoices_creditnote WHERE id = %s", [notes[0].pk])

    assert any(notes[1].number in text and "does not link" in text for text in violations("chain"))


@pytest.mark.parametrize(
    ("column", "value"),
    [("due_at", "2030-01-01T00:00:00Z"), ("collection_method", "send_invoice"), ("language", "en")],
)
def test_a_frozen_column_changed_behind_the_triggers_is_reported(three_issued, column, value):
    target = three_issued[0]
    raw(f"UPDATE invoices_invoice SET {column} = %s WHERE id = %s", [value, target.pk])

    assert any(target.number in text and column in text for text in violations("immutability"))


def test_the_chain_key_is_not_the_content_hash(three_issued, settings):
    # a chain made with another key reads as broken: the key, not the data, vouches for it
    settings.TARIF_INTEGRITY_KEY = "another-key"

    assert len(violations("chain")) == 3
