"""The database role cannot undo immutability (issue 13, hole 11), on PostgreSQL.

- the freeze triggers cover every column finalization sets (due_at, collection_method,
  language, content_hash, the chain) and every issued credit-note column;
- TRUNCATE, which skips row triggers, is refused on the issued documents, their lines,
  the number sequences and the audit log; the counter only moves forward;
- the application role `manage.py db_roles setup` creates can read and write rows but
  cannot `SET session_replication_role`, disable or drop a trigger, TRUNCATE, or change
  the schema; the owner can (the negative control), which is why it only runs migrations.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

from config.ops.db_roles import AppRole, db_roles_problems, db_roles_setup, role_problems
from invoices.models import NumberSequence
from invoices.services.credit_notes import credit_note_create
from tests.invoices.helpers import issue

pytestmark = pytest.mark.django_db

APP_ROLE = AppRole(name="tarif_app_test", password="tarif-app-test-password")
GUARDED_TABLES = (
    "invoices_invoice",
    "invoices_invoiceline",
    "invoices_creditnote",
    "invoices_creditnoteline",
    "invoices_numbersequence",
    "audit_auditentry",
)


@pytest.fixture
def invoice(postgres_only, customer, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    return issue(customer, [1000])


def refused(sql: str, params: list | None = None) -> str:
    """Run `sql` as the test's (owner) connection in a savepoint; return the error it raised."""
    with pytest.raises(DatabaseError) as error, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return str(error.value)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("due_at", "2030-01-01T00:00:00Z"),
        ("collection_method", "send_invoice"),
        ("language", "en"),
        ("content_hash", "0" * 64),
        ("chain_hash", "0" * 64),
        ("chain_previous", "0" * 64),
    ],
)
def test_every_column_set_at_finalization_is_frozen_by_the_database(invoice, column, value):
    assert "finalized" in refused(f"UPDATE invoices_invoice SET {column} = %s WHERE id = %s", [value, invoice.pk])


def test_what_may_still_change_on_an_issued_invoice_still_can(invoice):
    # the negative control of the freeze: payments and the status still move
    with connection.cursor() as cursor:
        cursor.execute("UPDATE invoices_invoice SET amount_remaining = 0, status = 'paid' WHERE id = %s", [invoice.pk])


@pytest.mark.parametrize(
    ("column", "value"),
    [("content_hash", "0" * 64), ("issued_at", "2030-01-01T00:00:00Z"), ("memo", "edited"), ("chain_hash", "x")],
)
def test_every_issued_credit_note_column_is_frozen_by_the_database(invoice, column, value):
    note = credit_note_create(invoice=invoice, amount=100, reason="other")

    assert "cannot change" in refused(f"UPDATE invoices_creditnote SET {column} = %s WHERE id = %s", [value, note.pk])


@pytest.mark.django_db(transaction=True)  # TRUNCATE waits for no deferred trigger of the same transaction
@pytest.mark.parametrize("table", GUARDED_TABLES)
def test_truncate_is_refused_even_for_the_owner(invoice, table):
    # (the test connections allow it for Django's flush: turn that off as production has it)
    with connection.cursor() as cursor:
        cursor.execute("SET tarif.allow_truncate = off")
    try:
        assert "TRUNCATE refused" in refused(f"TRUNCATE {table} CASCADE")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET tarif.allow_truncate = on")


def test_truncate_refusal_is_the_trigger(invoice):
    # negative control: with the session's permission the same statement goes through
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL tarif.allow_truncate = on")
        cursor.execute("TRUNCATE invoices_creditnoteline")


def test_the_number_counter_never_goes_back_nor_disappears(invoice):
    sequence = NumberSequence.objects.get(brand=invoice.brand)

    assert "only moves forward" in refused(
        "UPDATE invoices_numbersequence SET last_value = 0 WHERE id = %s", [sequence.pk]
    )
    assert "only moves forward" in refused(
        "UPDATE invoices_numbersequence SET chain_head = 'forged' WHERE id = %s", [sequence.pk]
    )
    assert "cannot be deleted" in refused("DELETE FROM invoices_numbersequence WHERE id = %s", [sequence.pk])


# -- the application role -----------------------------------------------------------------


@pytest.fixture
def app_connection(invoice):
    """A connection as the application role, set up by `db_roles setup` on this test database."""
    db_roles_setup(role=APP_ROLE)
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        dbname=settings["NAME"],
        user=APP_ROLE.name,
        password=APP_ROLE.password,
        autocommit=True,
    ) as app:
        yield app


# The setup commits through the test's connection only at its end: the grants must be visible
# to another connection, hence a transactional test.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "attack",
    [
        "SET session_replication_role = replica",
        "ALTER TABLE invoices_invoice DISABLE TRIGGER tarif_invoice_frozen",
        "ALTER TABLE invoices_invoice DISABLE TRIGGER ALL",
        "DROP TRIGGER tarif_invoice_frozen ON invoices_invoice",
        "TRUNCATE invoices_invoiceline",
        "TRUNCATE audit_auditentry",
        "CREATE TABLE tarif_attack (id int)",
        "ALTER TABLE invoices_invoice ADD COLUMN attack int",
        "CREATE OR REPLACE FUNCTION tarif_invoice_frozen() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$"
        " LANGUAGE plpgsql",
    ],
)
def test_the_application_role_cannot_undo_the_database_protections(app_connection, attack):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_connection.execute(attack)


@pytest.mark.django_db(transaction=True)
def test_the_application_role_works_with_rows_and_is_still_held_by_the_freeze(app_connection, invoice):
    # it can read and write rows (the application works) ...
    count = app_connection.execute("SELECT count(*) FROM invoices_invoice").fetchone()[0]
    app_connection.execute("UPDATE invoices_invoice SET memo = 'note' WHERE id = %s", [invoice.pk])
    app_connection.execute("SELECT nextval(pg_get_serial_sequence('invoices_invoice', 'id'))")
    assert count == 1
    # ... but a frozen column stays frozen
    with pytest.raises(psycopg.errors.RaiseException):
        app_connection.execute("UPDATE invoices_invoice SET content_hash = '' WHERE id = %s", [invoice.pk])


@pytest.mark.django_db(transaction=True)
def test_db_roles_check_passes_for_the_application_role_and_fails_for_the_owner(app_connection, invoice):
    assert role_problems(app_connection.cursor()) == []
    # negative control: the owner (the tests' superuser) is everything the check looks for
    owner_problems = db_roles_problems("default")
    assert any("superuser" in problem for problem in owner_problems)
    assert any("owns" in problem for problem in owner_problems)


@pytest.mark.django_db(transaction=True)
def test_the_owner_can_do_what_the_application_role_cannot(postgres_only, invoice):
    # negative control of the attacks above: the owner gets through, hence it only migrates
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE invoices_invoice SET content_hash = '' WHERE id = %s", [invoice.pk])
        cursor.execute("ALTER TABLE invoices_invoice DISABLE TRIGGER tarif_invoice_frozen")
        cursor.execute("ALTER TABLE invoices_invoice ENABLE TRIGGER tarif_invoice_frozen")
        transaction.set_rollback(True)
