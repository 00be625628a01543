"""Back up, destroy, restore, verify: nothing differs. Damaged archives are refused."""

from __future__ import annotations

import hashlib
import io
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection

from config.ops.backup import BackupError, backup_create, backup_restore, backup_verify, database_is_empty
from tests.invoices.helpers import issue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
DUMP_EXCLUDE = ["contenttypes", "auth.permission", "sessions"]


def dump() -> str:
    # Models without a table (e.g. the reports' permission holder) have nothing to compare.
    tableless = [model._meta.label for model in apps.get_models() if not model._meta.managed]
    out = io.StringIO()
    call_command("dumpdata", exclude=[*DUMP_EXCLUDE, *tableless], stdout=out, indent=0)
    return out.getvalue()


def media_sums(root) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def destroy_database() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        return
    tables = connection.introspection.table_names()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys = OFF")
        for table in tables:
            cursor.execute(f'DROP TABLE "{table}"')
        cursor.execute("PRAGMA foreign_keys = ON")


@pytest.fixture
def business(settings, tmp_path, customer_factory, tax_rate_factory):
    settings.MEDIA_ROOT = tmp_path / "media"
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    from invoices.services.pdf import invoice_document_store

    for customer in customer_factory.create_batch(2):
        invoice = issue(customer, [1200, 300])
        invoice_document_store(invoice_id=invoice.pk)
        issue(customer, [4500])
    return tmp_path


def test_backup_destroy_restore_verify_gives_back_exactly_the_same_data(business):
    media = business / "media"
    before, before_media = dump(), media_sums(media)
    assert before_media, "the invoices' PDFs should be part of the test"
    archive = business / "tarif.tar"
    call_command("backup", "--output", str(archive), stdout=io.StringIO(), verbosity=0)

    destroy_database()
    for path in media.rglob("*.pdf"):
        path.unlink()
    assert database_is_empty()

    call_command("restore", str(archive), stdout=io.StringIO())
    call_command("verify_integrity", stdout=io.StringIO())

    assert dump() == before
    assert media_sums(media) == before_media


def test_restore_refuses_a_database_that_is_not_empty(business):
    archive = business / "tarif.tar"
    backup_create(output=archive)

    with pytest.raises(CommandError, match="not empty"):
        call_command("restore", str(archive), stdout=io.StringIO())


def test_a_damaged_archive_is_refused_before_anything_is_touched(business):
    archive = business / "tarif.tar"
    backup_create(output=archive)
    data = bytearray(archive.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the database dump
    damaged = business / "damaged.tar"
    damaged.write_bytes(bytes(data))
    before = dump()

    with pytest.raises(BackupError, match="damaged|not a readable|manifest"):
        backup_restore(archive_path=damaged, force=True)

    assert dump() == before
    assert backup_verify(archive_path=archive)["files"]


def test_backup_never_overwrites_an_existing_archive(business):
    archive = business / "tarif.tar"
    archive.write_text("precious")

    with pytest.raises(BackupError, match="exists"):
        backup_create(output=archive)
    assert archive.read_text() == "precious"
