"""Backfill: post the entries of documents and payments that existed before the ledger.

Movements are posted in date order, in batches, one transaction per batch. Idempotent: a
movement already posted (unique source type, source id, movement) is skipped, so a second
run posts nothing and an interrupted run resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.apps import apps
from django.db import transaction

from invoices.ledger.models import JournalEntry
from invoices.ledger.postings import (
    post_credit_note_issued,
    post_invoice_uncollectible,
    post_invoice_voided,
    post_invoices_finalized,
    post_payment_succeeded,
    post_refund,
)
from invoices.models import CreditNote, Invoice


@dataclass(frozen=True)
class Movement:
    at: datetime
    kind: str
    pk: int


def _movements(*, brand_id: int | None) -> list[Movement]:
    Payment = apps.get_model("billing", "Payment")
    Refund = apps.get_model("billing", "Refund")
    invoices = Invoice.objects.exclude(status=Invoice.Status.DRAFT).exclude(finalized_at__isnull=True)
    notes = CreditNote.objects.all()
    payments = Payment.objects.filter(status="succeeded", settled_at__isnull=False)
    refunds = Refund.objects.filter(status="executed", executed_at__isnull=False)
    if brand_id is not None:
        invoices = invoices.filter(brand_id=brand_id)
        notes = notes.filter(brand_id=brand_id)
        payments = payments.filter(invoice__brand_id=brand_id)
        refunds = refunds.filter(invoice__brand_id=brand_id)
    moves = [Movement(at, "invoice", pk) for pk, at in invoices.values_list("pk", "finalized_at")]
    moves += [
        Movement(at, "uncollectible", pk)
        for pk, at in invoices.filter(status=Invoice.Status.UNCOLLECTIBLE).values_list("pk", "updated_at")
    ]
    moves += [
        Movement(at, "void", pk)
        for pk, at in invoices.filter(status=Invoice.Status.VOID, voided_at__isnull=False).values_list(
            "pk", "voided_at"
        )
    ]
    moves += [Movement(at, "credit_note", pk) for pk, at in notes.values_list("pk", "issued_at")]
    moves += [Movement(at, "payment", pk) for pk, at in payments.values_list("pk", "settled_at")]
    moves += [Movement(at, "refund", pk) for pk, at in refunds.values_list("pk", "executed_at")]
    order = {"invoice": 0, "credit_note": 1, "payment": 2, "refund": 3, "uncollectible": 4, "void": 5}
    moves.sort(key=lambda move: (move.at, order[move.kind], move.pk))
    return moves


def _post(move: Movement) -> int:
    if move.kind == "invoice":
        return post_invoices_finalized(invoices=[Invoice.objects.get(pk=move.pk)])
    if move.kind == "credit_note":
        return post_credit_note_issued(credit_note=CreditNote.objects.select_related("invoice").get(pk=move.pk))
    if move.kind == "payment":
        payment = apps.get_model("billing", "Payment").objects.get(pk=move.pk)
        BalanceTransaction = apps.get_model("invoices", "BalanceTransaction")
        excess = sum(
            BalanceTransaction.objects.filter(
                invoice_id=payment.invoice_id, kind="overpayment", created_at=payment.settled_at
            ).values_list("amount", flat=True)
        )
        return post_payment_succeeded(payment=payment, applied=payment.amount - min(excess, payment.amount))
    if move.kind == "refund":
        refund = apps.get_model("billing", "Refund").objects.select_related("payment").get(pk=move.pk)
        return post_refund(refund=refund)
    invoice = Invoice.objects.get(pk=move.pk)
    if move.kind == "uncollectible":
        # What remained due when written off is what remains now (later payments recover 654).
        return post_invoice_uncollectible(invoice=invoice, at=move.at)
    return post_invoice_voided(invoice=invoice, at=move.at)


def _already(move: Movement) -> bool:
    source_type, movement = {
        "invoice": ("invoice", "invoice_finalized"),
        "credit_note": ("credit_note", "credit_note_issued"),
        "payment": ("payment", "payment_succeeded"),
        "refund": ("refund", "refund_executed"),
        "uncollectible": ("invoice", "invoice_uncollectible"),
        "void": ("invoice", "invoice_finalized_reversed"),
    }[move.kind]
    return JournalEntry.objects.filter(source_type=source_type, source_id=move.pk, movement=movement).exists()


def ledger_backfill(
    *,
    brand_id: int | None = None,
    dry_run: bool = False,
    batch_size: int = 500,
    progress: Callable[[Iterator[Movement], int], Iterator[Movement]] | None = None,
) -> dict[str, int]:
    """Post what is missing; returns {"movements": seen, "posted": entries written, "pending": to post}."""
    moves = _movements(brand_id=brand_id)
    iterator: Iterator[Movement] = iter(moves)
    if progress is not None:
        iterator = progress(iterator, len(moves))
    posted = pending = 0
    batch: list[Movement] = []

    def flush() -> int:
        with transaction.atomic(durable=True):
            return sum(_post(move) for move in batch)

    for move in iterator:
        if _already(move):
            continue
        pending += 1
        if dry_run:
            continue
        batch.append(move)
        if len(batch) >= batch_size:
            posted += flush()
            batch = []
    if batch and not dry_run:
        posted += flush()
    return {"movements": len(moves), "posted": posted, "pending": pending}
