"""manage.py ledger_backfill: posts existing documents and payments once, in date order."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from billing.services.payments import payment_record_manual
from invoices.ledger.models import JournalEntry
from invoices.ledger.services import ledger_entries_validate
from invoices.services.credit_notes import credit_note_create
from tests.invoices.helpers import ISSUED_AT, issue
from tests.invoices.ledger.helpers import balances

pytestmark = pytest.mark.django_db


def test_backfill_posts_history_once(customer_factory, brand, fr_vat, settings):
    # given documents and payments made before the ledger existed
    settings.TARIF_LEDGER_ENABLED = False
    customer = customer_factory(brand=brand)
    paid = issue(customer, [10000], collection_method="send_invoice")
    payment_record_manual(invoice=paid, amount=12000, method="bank_transfer", at=ISSUED_AT + timedelta(days=1))
    open_invoice = issue(customer, [5000], collection_method="send_invoice", at=ISSUED_AT + timedelta(days=2))
    credit_note_create(invoice=open_invoice, amount=1200, reason="other", at=ISSUED_AT + timedelta(days=3))
    assert not JournalEntry.objects.exists()
    settings.TARIF_LEDGER_ENABLED = True

    # when the backfill runs (a dry run first, then twice for real)
    dry = StringIO()
    call_command("ledger_backfill", "--dry-run", "--no-progress", stdout=dry)
    assert "would post 4 entries" in dry.getvalue() and not JournalEntry.objects.exists()
    first, second = StringIO(), StringIO()
    call_command("ledger_backfill", "--brand", brand.slug, "--no-progress", stdout=first)
    call_command("ledger_backfill", "--no-progress", stdout=second)

    # then the books are what live postings would have written, and the second run posted nothing
    assert "posted 4 entries" in first.getvalue()
    assert "posted 0 entries" in second.getvalue()
    assert balances(brand) == {"512": 12000, "411": 4800, "706": -14000, "445712": -2800}
    # and its entries are validated like the others: unnumbered until validation, then in date order
    assert not JournalEntry.objects.filter(number__isnull=False).exists()
    ledger_entries_validate(brand=brand, livemode=True, up_to=ISSUED_AT.date() + timedelta(days=30))
    vt = list(JournalEntry.objects.filter(journal="VT").order_by("number").values_list("source_type", "number"))
    assert vt == [("invoice", 1), ("invoice", 2), ("credit_note", 3)]


def test_backfill_refuses_an_unknown_brand(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("ledger_backfill", "--brand", "nope", "--no-progress", stdout=StringIO())
