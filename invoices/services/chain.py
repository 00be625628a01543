"""The hash chain of each number series, over the stored documents: backfill and walk.

Links are made at issue (`number_series_commit`); this module links documents issued
before the chain existed (the migration that added it) and walks a series for
`verify_integrity` (config/ops/integrity.py). Both take the model classes so a
migration can pass its historical models.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from invoices.chain import chain_link, integrity_key
from invoices.services.numbering import sequence_numbers

if TYPE_CHECKING:
    # The data migration passes its historical models, shaped like these (no runtime import).
    from invoices.models import CreditNote, Invoice, NumberSequence

INVOICE = "invoice"


def _documents_of(
    sequence: NumberSequence, *, invoice_model: type[Invoice], credit_note_model: type[CreditNote]
) -> tuple[list[str], dict[str, Invoice | CreditNote]]:
    model: type[Invoice] | type[CreditNote] = invoice_model if sequence.kind == INVOICE else credit_note_model
    numbers = sequence_numbers(sequence)
    found = {document.number: document for document in model.objects.filter(number__in=numbers)}
    return numbers, found


def chain_backfill(
    *, sequence_model: type[NumberSequence], invoice_model: type[Invoice], credit_note_model: type[CreditNote]
) -> int:
    """Link, in number order, the documents of every series that has no chain yet. Returns how many."""
    key = integrity_key()
    linked = 0
    for sequence in sequence_model.objects.select_related("brand").filter(chain_head="", last_value__gt=0):
        numbers, found = _documents_of(sequence, invoice_model=invoice_model, credit_note_model=credit_note_model)
        if any(document.chain_hash for document in found.values()):
            continue  # already chained: never re-link what was issued with a link
        previous, last_issued_at = "", None
        for number in numbers:
            document = found.get(number)
            if document is None:
                continue  # a gap: verify_integrity reports it (numbering); the chain goes on
            link = chain_link(
                previous=previous, kind=sequence.kind, number=number, content_hash=document.content_hash, key=key
            )
            type(document).objects.filter(pk=document.pk).update(chain_previous=previous, chain_hash=link)
            # By name: the migration's historical models are not instances of Invoice/CreditNote.
            issued = getattr(document, "finalized_at" if sequence.kind == INVOICE else "issued_at")
            last_issued_at = max(filter(None, (last_issued_at, issued)), default=None)
            previous = link
            linked += 1
        sequence_model.objects.filter(pk=sequence.pk).update(chain_head=previous, last_issued_at=last_issued_at)
    return linked


_MISSING = "(missing)"


@dataclass(frozen=True)
class ChainBreak:
    number: str
    detail: str


def chain_walk(
    *, sequence: NumberSequence, invoice_model: type[Invoice], credit_note_model: type[CreditNote]
) -> Iterator[ChainBreak]:
    """Every place where `sequence`'s chain does not hold, in number order.

    Each document must link to the one numbered before it (or "" for the first), carry
    the keyed link of its own stored content hash, and the last link must be the
    sequence's head. A deleted document, a rewritten one (even with a recomputed
    content hash), a reordered or inserted one each break it.
    """
    key = integrity_key()
    numbers, found = _documents_of(sequence, invoice_model=invoice_model, credit_note_model=credit_note_model)
    previous = ""
    for number in numbers:
        document = found.get(number)
        if document is None:
            yield ChainBreak(number, "missing: the chain expects a document with this number")
            previous = _MISSING  # so its successor is reported too: it links to nothing there is
            continue
        if document.chain_previous != previous:
            yield ChainBreak(number, "does not link to the document numbered before it (one was removed or replaced)")
        expected = chain_link(
            previous=document.chain_previous,
            kind=sequence.kind,
            number=number,
            content_hash=document.content_hash,
            key=key,
        )
        if document.chain_hash != expected:
            yield ChainBreak(number, "its chain hash does not match its content: rewritten after issue")
        previous = document.chain_hash
    if numbers and previous != sequence.chain_head:
        yield ChainBreak(numbers[-1], "the series' chain head is not its last document's link")
