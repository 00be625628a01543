"""A finalized invoice never changes: the model layer refuses on every database, and on
PostgreSQL the database itself refuses (migration 0002 / 0003 triggers)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from invoices.errors import FrozenInvoiceError
from invoices.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine
from invoices.services.credit_notes import credit_note_create
from tests.invoices.helpers import ISSUED_AT, create_draft, issue

pytestmark = pytest.mark.django_db


@pytest.fixture
def issued(customer, tax_rate_factory) -> Invoice:
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    return Invoice.objects.get(pk=issue(customer, [1000, 500]).pk)


# -- model layer (every database) -------------------------------------------------------


def test_saving_a_changed_amount_of_a_finalized_invoice_is_refused(issued):
    # when the total of an issued invoice is changed and saved
    issued.total = 1
    with pytest.raises(FrozenInvoiceError, match="total cannot change"):
        issued.save()

    # then the database still holds the issued total
    assert Invoice.objects.get(pk=issued.pk).total == 1800


def test_in_place_edits_of_the_snapshot_are_refused_too(issued):
    issued.issued_snapshot["buyer"]["legal_name"] = "Someone else"
    with pytest.raises(FrozenInvoiceError, match="issued_snapshot cannot change"):
        issued.save()


def test_a_finalized_invoice_cannot_go_back_to_draft_or_be_deleted(issued):
    issued.status = Invoice.Status.DRAFT
    with pytest.raises(FrozenInvoiceError, match="cannot go back to draft"):
        issued.save()
    with pytest.raises(FrozenInvoiceError, match="void it instead"):
        Invoice.objects.get(pk=issued.pk).delete()


def test_status_and_payment_columns_of_a_finalized_invoice_still_change(issued):
    # when an open invoice is marked paid through the ORM
    issued.status = Invoice.Status.PAID
    issued.amount_paid = issued.amount_due
    issued.amount_remaining = 0
    issued.paid_at = ISSUED_AT
    issued.save()

    # then it is saved
    assert Invoice.objects.get(pk=issued.pk).status == "paid"


def test_update_fields_without_frozen_columns_is_allowed_even_with_stale_amounts(issued):
    issued.total = 1  # not written: not in update_fields
    issued.memo = "Thanks!"
    issued.save(update_fields=["memo"])
    assert Invoice.objects.get(pk=issued.pk).total == 1800


def test_queryset_update_and_delete_of_finalized_invoices_are_refused(issued, customer):
    draft = create_draft(customer)
    with pytest.raises(FrozenInvoiceError, match=r"cannot change \(total\)"):
        Invoice.objects.filter(pk__in=[issued.pk, draft.pk]).update(total=0)
    with pytest.raises(FrozenInvoiceError, match="cannot be deleted"):
        Invoice.objects.filter(customer=customer).delete()

    # while drafts alone may change or go, and status updates pass
    Invoice.objects.filter(pk=draft.pk).update(total=0)
    Invoice.objects.filter(pk=issued.pk).update(status="uncollectible")
    Invoice.objects.filter(pk=draft.pk).delete()
    assert set(Invoice.objects.values_list("status", flat=True)) == {"uncollectible"}


def test_lines_of_a_finalized_invoice_cannot_be_saved_deleted_or_added(issued):
    line = issued.lines.first()
    line.amount = 1
    with pytest.raises(FrozenInvoiceError, match="lines cannot be added or changed"):
        line.save()
    with pytest.raises(FrozenInvoiceError, match="lines cannot be deleted"):
        line.delete()
    with pytest.raises(FrozenInvoiceError, match="cannot change"):
        issued.lines.update(amount=0)
    with pytest.raises(FrozenInvoiceError, match="cannot be deleted"):
        InvoiceLine.objects.filter(invoice=issued).delete()
    with pytest.raises(FrozenInvoiceError, match="added or changed"):
        InvoiceLine.objects.create(invoice=issued, kind="one_off", description="Extra", amount=100)
    with pytest.raises(FrozenInvoiceError, match="cannot be added"):
        InvoiceLine.objects.bulk_create([InvoiceLine(invoice=issued, kind="one_off", description="Extra", amount=1)])
    assert sorted(issued.lines.values_list("amount", flat=True)) == [500, 1000]


def test_lines_of_a_draft_change_freely(customer, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    draft = create_draft(customer, [1000])
    line = draft.lines.get()
    line.description = "Renamed"
    line.save()
    InvoiceLine.objects.create(invoice=draft, kind="one_off", description="Extra", amount=100)
    draft.lines.filter(description="Extra").delete()
    draft.total = 0
    draft.save()
    assert draft.lines.get().description == "Renamed"


def test_an_issued_credit_note_cannot_change_except_its_status(issued):
    note = credit_note_create(invoice=issued, amount=600, reason="other", at=ISSUED_AT)
    note = CreditNote.objects.get(pk=note.pk)
    note.total = 1
    with pytest.raises(FrozenInvoiceError, match="total cannot change"):
        note.save()
    with pytest.raises(FrozenInvoiceError, match="cannot be deleted"):
        CreditNote.objects.get(pk=note.pk).delete()
    with pytest.raises(FrozenInvoiceError, match="cannot change"):
        CreditNoteLine.objects.filter(credit_note=note).update(amount=0)
    CreditNote.objects.filter(pk=note.pk).update(status="void")


def test_brands_cannot_share_a_number_format(brand_factory):
    brand_factory(invoice_number_format="X-{year}-{seq:04d}")
    clone = brand_factory.build(slug="clone", invoice_number_format="X-{year}-{seq:04d}")
    with pytest.raises(ValidationError, match="already uses this format"):
        clone.clean()


# -- PostgreSQL triggers ----------------------------------------------------------------------


def raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_database_refuses_a_raw_update_of_a_finalized_total(postgres_only, issued):
    with pytest.raises(DatabaseError, match="is finalized: its amounts and lines cannot change"), transaction.atomic():
        raw("UPDATE invoices_invoice SET total = 1 WHERE id = %s", [issued.pk])
    with pytest.raises(DatabaseError, match="cannot go back to draft"), transaction.atomic():
        raw("UPDATE invoices_invoice SET status = 'draft' WHERE id = %s", [issued.pk])
    with pytest.raises(DatabaseError, match="cannot be deleted"), transaction.atomic():
        raw("DELETE FROM invoices_invoice WHERE id = %s", [issued.pk])
    assert Invoice.objects.get(pk=issued.pk).total == 1800


def test_database_refuses_raw_changes_to_lines_of_a_finalized_invoice(postgres_only, issued):
    line = issued.lines.first()
    with pytest.raises(DatabaseError, match="lines of finalized invoice"), transaction.atomic():
        raw("DELETE FROM invoices_invoiceline WHERE id = %s", [line.pk])
    with pytest.raises(DatabaseError, match="lines of finalized invoice"), transaction.atomic():
        raw("UPDATE invoices_invoiceline SET amount = 1 WHERE id = %s", [line.pk])
    with pytest.raises(DatabaseError, match="lines of finalized invoice"), transaction.atomic():
        raw(
            "INSERT INTO invoices_invoiceline (invoice_id, position, kind, description, quantity, amount, "
            "discount_amount, tax_rate, tax_category, tax_inclusive, tax_amount, metadata) "
            "VALUES (%s, 9, 'one_off', 'Extra', 1, 100, 0, 0, 'O', false, 0, '{}')",
            [issued.pk],
        )
    assert issued.lines.count() == 2


def test_database_still_lets_a_finalized_invoice_be_paid(postgres_only, issued):
    raw(
        "UPDATE invoices_invoice SET status = 'paid', amount_paid = amount_due, amount_remaining = 0 WHERE id = %s",
        [issued.pk],
    )
    assert Invoice.objects.get(pk=issued.pk).status == "paid"


def test_database_refuses_raw_changes_to_an_issued_credit_note(postgres_only, issued):
    note = credit_note_create(invoice=issued, amount=600, reason="other", at=ISSUED_AT)
    with pytest.raises(DatabaseError, match="is issued and cannot change"), transaction.atomic():
        raw("UPDATE invoices_creditnote SET total = 1 WHERE id = %s", [note.pk])
    with pytest.raises(DatabaseError, match="credit note lines cannot change"), transaction.atomic():
        raw("DELETE FROM invoices_creditnoteline WHERE credit_note_id = %s", [note.pk])
