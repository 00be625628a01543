"""Writes and checks of the archive (docs/archive.md): one append service, one verifier."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction

from config.clock import system_now
from config.errors import DomainError
from config.types import JsonMapping
from invoices.archive.locks import archive_head_qs_for_update
from invoices.archive.models import ArchiveHead, ArchiveRecord
from invoices.chain import integrity_key
from invoices.models import Brand


class ArchiveError(DomainError):
    code = "archive_invalid"
    http_status = 422


def record_link(
    *,
    previous_hash: str,
    sequence: int,
    kind: str,
    reference: str,
    brand_id: int,
    livemode: bool,
    content_sha256: str,
    metadata: JsonMapping,
    archived_at: datetime,
    key: bytes | None = None,
) -> str:
    """HMAC-SHA256 of one record's fields and the hash of the record before it."""
    message = "\n".join(
        (
            previous_hash,
            str(sequence),
            kind,
            reference,
            str(brand_id),
            "live" if livemode else "test",
            content_sha256,
            json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            archived_at.isoformat(),
        )
    ).encode()
    return hmac.new(key if key is not None else integrity_key(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One record to append (`archive_append_many`)."""

    kind: str
    reference: str
    content: bytes
    brand_id: int
    livemode: bool
    metadata: JsonMapping


def archive_append(
    *, kind: str, reference: str, content: bytes, brand: Brand, livemode: bool, metadata: JsonMapping
) -> ArchiveRecord:
    """Append one record to the mode's chain, under the chain head's lock (held until commit).

    Call it in the transaction that records the transmission (the flow's bytes as sent), so
    the record exists exactly when the transmission does.
    """
    entry = ArchiveEntry(
        kind=kind, reference=reference, content=content, brand_id=brand.pk, livemode=livemode, metadata=metadata
    )
    return archive_append_many(entries=[entry])[0]


def archive_append_many(*, entries: Sequence[ArchiveEntry]) -> list[ArchiveRecord]:
    """Append records in order, each linked to the one before, with one lock of each mode's
    chain head and one insert (a batch of transmissions recorded at once)."""
    for entry in entries:
        if entry.kind not in ArchiveRecord.Kind.values:
            raise ArchiveError(
                f"unknown archive kind {entry.kind!r}"
            )  # untranslated: programmer error (kinds come from code)
        if not entry.reference:
            raise ArchiveError("an archive record needs a reference")
    if not entries:
        return []
    records: list[ArchiveRecord] = []
    with transaction.atomic():
        for livemode in sorted({entry.livemode for entry in entries}):
            head = archive_head_qs_for_update().filter(livemode=livemode).first()
            if head is None:
                # The mode's first record: two appenders may both find no head. ON CONFLICT DO
                # NOTHING makes the second wait for the first's head, then both lock that one row.
                ArchiveHead.objects.bulk_create([ArchiveHead(livemode=livemode)], ignore_conflicts=True)
                head = archive_head_qs_for_update().get(livemode=livemode)
            archived_at = system_now()
            years = int(getattr(settings, "TARIF_ARCHIVE_RETENTION_YEARS", 10))
            today = archived_at.date()
            retain_until = today.replace(
                year=today.year + years, day=28 if (today.month, today.day) == (2, 29) else today.day
            )
            sequence, previous_hash = head.last_sequence, head.last_hash
            batch: list[ArchiveRecord] = []
            for entry in entries:
                if entry.livemode != livemode:
                    continue
                sequence += 1
                content_sha256 = hashlib.sha256(entry.content).hexdigest()
                record_hash = record_link(
                    previous_hash=previous_hash,
                    sequence=sequence,
                    kind=entry.kind,
                    reference=entry.reference,
                    brand_id=entry.brand_id,
                    livemode=livemode,
                    content_sha256=content_sha256,
                    metadata=entry.metadata,
                    archived_at=archived_at,
                )
                batch.append(
                    ArchiveRecord(
                        livemode=livemode,
                        sequence=sequence,
                        kind=entry.kind,
                        reference=entry.reference,
                        brand_id=entry.brand_id,
                        content=entry.content,
                        content_sha256=content_sha256,
                        metadata=dict(entry.metadata),
                        archived_at=archived_at,
                        retain_until=retain_until,
                        previous_hash=previous_hash,
                        record_hash=record_hash,
                    )
                )
                previous_hash = record_hash
            records.extend(ArchiveRecord.objects.bulk_create(batch))
            # One step over the whole batch: the database trigger checks that every record it
            # moves over is there and that it stops on the last one's hash (archive 0002).
            if batch:
                ArchiveHead.objects.filter(pk=head.pk).update(
                    last_sequence=batch[-1].sequence, last_hash=batch[-1].record_hash
                )
    return records


@dataclass(frozen=True, slots=True)
class ArchiveProblem:
    livemode: bool
    sequence: int
    message: str


def archive_verify(
    *, livemode: bool | None = None, progress: Callable[[int], None] | None = None
) -> list[ArchiveProblem]:
    """Every broken link, oldest first: altered content, altered fields, a missing, reordered
    or added record, a head that does not end the chain. Empty when the archive is intact."""
    problems: list[ArchiveProblem] = []
    key = integrity_key()
    modes: Iterable[bool] = (True, False) if livemode is None else (livemode,)
    for mode in modes:
        previous_hash, expected_sequence = "", 1
        records = (
            ArchiveRecord.objects.filter(livemode=mode)
            .order_by("sequence")
            .values_list(
                "sequence",
                "kind",
                "reference",
                "brand_id",
                "content",
                "content_sha256",
                "metadata",
                "archived_at",
                "previous_hash",
                "record_hash",
            )
        )
        for (
            sequence,
            kind,
            reference,
            brand_id,
            content,
            content_sha,
            metadata,
            at,
            previous,
            stored,
        ) in records.iterator(chunk_size=2000):
            if sequence != expected_sequence:
                problems.append(
                    ArchiveProblem(mode, sequence, f"record {expected_sequence} is missing before record {sequence}")
                )
            if previous != previous_hash:
                problems.append(
                    ArchiveProblem(mode, sequence, f"record {sequence} does not follow the record before it")
                )
            if hashlib.sha256(bytes(content)).hexdigest() != content_sha:
                problems.append(ArchiveProblem(mode, sequence, f"record {sequence}: its content was altered"))
            recomputed = record_link(
                previous_hash=previous,
                sequence=sequence,
                kind=kind,
                reference=reference,
                brand_id=brand_id,
                livemode=mode,
                content_sha256=content_sha,
                metadata=metadata,
                archived_at=at,
                key=key,
            )
            if not hmac.compare_digest(recomputed, stored):
                problems.append(ArchiveProblem(mode, sequence, f"record {sequence}: its fields or hash were altered"))
            previous_hash, expected_sequence = stored, sequence + 1
            if progress is not None:
                progress(1)
        head = ArchiveHead.objects.filter(livemode=mode).first()
        if head is not None and (head.last_sequence, head.last_hash) != (expected_sequence - 1, previous_hash):
            problems.append(
                ArchiveProblem(
                    mode,
                    head.last_sequence,
                    f"the chain head names record {head.last_sequence}, the last record is {expected_sequence - 1}",
                )
            )
    return problems
