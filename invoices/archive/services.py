"""Writes and checks of the archive (docs/archive.md): one append service, one verifier."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
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


def archive_append(
    *, kind: str, reference: str, content: bytes, brand: Brand, livemode: bool, metadata: JsonMapping
) -> ArchiveRecord:
    """Append one record to the mode's chain, under the chain head's lock (held until commit).

    Call it in the transaction that records the transmission (the flow's bytes as sent), so
    the record exists exactly when the transmission does.
    """
    if kind not in ArchiveRecord.Kind.values:
        raise ArchiveError(f"unknown archive kind {kind!r}")
    if not reference:
        raise ArchiveError("an archive record needs a reference")
    with transaction.atomic():
        head = archive_head_qs_for_update().filter(livemode=livemode).first()
        if head is None:
            head = archive_head_qs_for_update().create(livemode=livemode)
        archived_at = system_now()
        sequence = head.last_sequence + 1
        content_sha256 = hashlib.sha256(content).hexdigest()
        record_hash = record_link(
            previous_hash=head.last_hash,
            sequence=sequence,
            kind=kind,
            reference=reference,
            brand_id=brand.pk,
            livemode=livemode,
            content_sha256=content_sha256,
            metadata=metadata,
            archived_at=archived_at,
        )
        years = int(getattr(settings, "TARIF_ARCHIVE_RETENTION_YEARS", 10))
        today = archived_at.date()
        retain_until = today.replace(
            year=today.year + years, day=28 if (today.month, today.day) == (2, 29) else today.day
        )
        record = ArchiveRecord.objects.create(
            livemode=livemode,
            sequence=sequence,
            kind=kind,
            reference=reference,
            brand=brand,
            content=content,
            content_sha256=content_sha256,
            metadata=dict(metadata),
            archived_at=archived_at,
            retain_until=retain_until,
            previous_hash=head.last_hash,
            record_hash=record_hash,
        )
        ArchiveHead.objects.filter(pk=head.pk).update(last_sequence=sequence, last_hash=record_hash)
    return record


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
