"""The append-only, hash-chained archive and `verify_archive`, with negative controls (issue 18 item 8)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError

from invoices.archive.models import ArchiveHead, ArchiveRecord
from invoices.archive.services import ArchiveError, archive_append, archive_verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def archived(brand):
    """Three records in the live chain."""
    return [
        archive_append(
            kind="ereport",
            reference=f"ereport-{n}",
            content=f"<Report n='{n}'/>".encode(),
            brand=brand,
            livemode=True,
            metadata={"n": n},
        )
        for n in (1, 2, 3)
    ]


def _tamper(sql: str, params: tuple = ()) -> None:
    """Change the table behind the triggers' back, as an attacker with the owner role could."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")


def _verify() -> str:
    with pytest.raises(CommandError) as failed:
        call_command("verify_archive", "--no-progress", stdout=StringIO(), stderr=StringIO())
    return str(failed.value)


def test_records_chain_and_verify_clean(archived):
    assert [record.sequence for record in archived] == [1, 2, 3]
    assert archived[1].previous_hash == archived[0].record_hash
    assert archived[0].retain_until.year == archived[0].archived_at.year + 10
    head = ArchiveHead.objects.get(livemode=True)
    assert (head.last_sequence, head.last_hash) == (3, archived[2].record_hash)
    out = StringIO()
    call_command("verify_archive", "--no-progress", stdout=out)
    assert "3 record(s) verified" in out.getvalue()


def test_test_mode_has_its_own_chain(archived, brand):
    record = archive_append(kind="status", reference="s-1", content=b"x", brand=brand, livemode=False, metadata={})
    assert (record.sequence, record.previous_hash) == (1, "")
    assert archive_verify() == []


def test_bad_input_is_refused(brand):
    with pytest.raises(ArchiveError):
        archive_append(kind="invoice", reference="x", content=b"", brand=brand, livemode=True, metadata={})
    with pytest.raises(ArchiveError):
        archive_append(kind="document", reference="", content=b"", brand=brand, livemode=True, metadata={})


def test_database_refuses_update_delete_and_truncate(postgres_only, archived):
    for statement in (
        "UPDATE archive_archiverecord SET content = 'x' WHERE sequence = 2",
        "DELETE FROM archive_archiverecord WHERE sequence = 3",
        "UPDATE archive_archivehead SET last_sequence = 1",
    ):
        with pytest.raises(DatabaseError, match="append-only|only moves forward"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement)
    with pytest.raises(DatabaseError, match="TRUNCATE refused"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks in the way
            cursor.execute("SET LOCAL tarif.allow_truncate = off")
            cursor.execute("TRUNCATE archive_archiverecord CASCADE")
    assert ArchiveRecord.objects.count() == 3


def test_model_layer_never_updates_a_record(postgres_only, archived):
    with pytest.raises(DatabaseError), transaction.atomic():
        ArchiveRecord.objects.filter(pk=archived[0].pk).update(reference="other")


def test_negative_control_tampered_content(postgres_only, archived):
    _tamper("UPDATE archive_archiverecord SET content = %s WHERE sequence = 2", (b"<Report n='9'/>",))

    assert "record 2" in _verify()


def test_negative_control_consistent_rewrite_is_caught_by_the_hmac(postgres_only, archived):
    import hashlib

    content = b"<Report forged='1'/>"
    _tamper(
        "UPDATE archive_archiverecord SET content = %s, content_sha256 = %s WHERE sequence = 2",
        (content, hashlib.sha256(content).hexdigest()),
    )

    message = _verify()
    assert "record 2" in message
    assert any("fields or hash were altered" in problem.message for problem in archive_verify())


def test_negative_control_deleted_record(postgres_only, archived):
    _tamper("DELETE FROM archive_archiverecord WHERE sequence = 2")

    problems = archive_verify()
    assert problems[0].message == "record 2 is missing before record 3"
    assert "record 3" in _verify()


def test_negative_control_reordered_records(postgres_only, archived):
    _tamper("UPDATE archive_archiverecord SET sequence = sequence + 100 WHERE sequence IN (2, 3)")
    _tamper("UPDATE archive_archiverecord SET sequence = 2 WHERE sequence = 103")
    _tamper("UPDATE archive_archiverecord SET sequence = 3 WHERE sequence = 102")

    problems = archive_verify()
    assert problems and problems[0].sequence == 2
    assert "record 2" in _verify()


def test_negative_control_deleted_last_record_is_caught_by_the_head(postgres_only, archived):
    _tamper("DELETE FROM archive_archiverecord WHERE sequence = 3")

    assert "head names record 3" in archive_verify()[0].message


def test_export_writes_files_and_a_manifest(archived, tmp_path):
    import hashlib
    import json

    call_command("export_archive", str(tmp_path), stdout=StringIO())

    lines = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [line["sequence"] for line in lines] == [1, 2, 3]
    for line in lines:
        assert hashlib.sha256((tmp_path / line["file"]).read_bytes()).hexdigest() == line["content_sha256"]


def test_the_head_moves_over_a_batch_in_one_step(postgres_only, brand):
    # given a batch of five records appended at once
    from invoices.archive.services import ArchiveEntry, archive_append_many

    records = archive_append_many(
        entries=[
            ArchiveEntry(
                kind="document", reference=f"d-{n}", content=b"x", brand_id=brand.pk, livemode=True, metadata={}
            )
            for n in range(5)
        ]
    )
    # then the head stands on the last one and the chain verifies
    head = ArchiveHead.objects.get(livemode=True)
    assert (head.last_sequence, head.last_hash) == (5, records[-1].record_hash)
    assert archive_verify() == []


@pytest.mark.parametrize(
    "statement",
    [
        # past records that are not there (a gap in the chain)
        "UPDATE archive_archivehead SET last_sequence = 5, last_hash = %(third)s WHERE livemode",
        # over records that are there, but not onto the last one's hash
        "UPDATE archive_archivehead SET last_sequence = 3, last_hash = 'forged' WHERE livemode",
        # backwards, or standing still with another hash
        "UPDATE archive_archivehead SET last_sequence = 0 WHERE livemode",
        "UPDATE archive_archivehead SET last_hash = 'forged' WHERE livemode",
    ],
    ids=["past-missing-records", "wrong-hash", "backwards", "standing-still"],
)
def test_the_database_refuses_a_head_that_skips_forges_or_goes_back(postgres_only, archived, statement):
    # given three records on the live chain, and its head put back on the first one
    _tamper(
        "UPDATE archive_archivehead SET last_sequence = 1, last_hash = %s WHERE livemode", (archived[0].record_hash,)
    )
    third = {"third": archived[2].record_hash}

    # when the head is moved wrongly, then the trigger refuses it
    with pytest.raises(DatabaseError, match="only moves forward"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(statement, third)

    # and the right step (over records 2 and 3, onto record 3's hash) is accepted: the positive control
    with connection.cursor() as cursor:
        cursor.execute("UPDATE archive_archivehead SET last_sequence = 3, last_hash = %(third)s WHERE livemode", third)
    assert ArchiveHead.objects.get(livemode=True).last_sequence == 3


@pytest.mark.django_db(transaction=True)
def test_two_first_appends_at_once_share_one_head(postgres_only, brand):
    # given a fresh database (no head yet) and two appenders starting together (two sweepers
    # on a new install: the e-invoicing benchmark met it as a unique violation)
    import threading

    from django.db import connections

    from invoices.archive.services import ArchiveEntry, archive_append_many

    ArchiveHead.objects.all().delete()
    barrier, errors = threading.Barrier(2), []

    def append(name: str) -> None:
        try:
            with transaction.atomic():
                barrier.wait(timeout=10)
                archive_append_many(
                    entries=[
                        ArchiveEntry(
                            kind="document", reference=name, content=b"x", brand_id=brand.pk, livemode=True, metadata={}
                        )
                    ]
                )
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # then both records are in one chain, under one head
    assert errors == []
    assert ArchiveHead.objects.filter(livemode=True).count() == 1
    assert sorted(ArchiveRecord.objects.values_list("sequence", flat=True)) == [1, 2]
    assert archive_verify() == []
