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
    NumberSequence.objects.update(last_value=1)

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
