"""Durable hand-offs: work that must follow a commit survives a crash right after it.

A service that issues an invoice calls `handoff_enqueue_on_commit(kind=..., object_ids=...)`
inside its transaction: that writes one `Handoff` row per object in the same transaction
(the durable record) and registers the Celery enqueue in `on_commit` (the fast path).
The task that does the work calls `handoffs_complete` once it has handled an object.

If the process dies between the commit and the enqueue, or the broker loses the message,
the row stays pending; `handoffs_sweep` (Celery beat, every minute) enqueues the same task
for every row still pending `TARIF_HANDOFF_GRACE_SECONDS` after its commit, then again with
a growing delay (up to MAX_SWEEPS times). Celery does the work; the table only makes the
hand-off durable. The handlers are idempotent (collection reuses its pending attempt and its
gateway idempotency key, a document is stored once, a notification is sent once), so the
fast path and the sweeper racing each other never charge or send twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from config.jobs import enqueue
from config.ops.locks import handoffs_claim_qs
from config.ops.maintenance import maintenance_active
from config.ops.models import Handoff

logger = logging.getLogger(__name__)

Kind = Handoff.Kind
MAX_SWEEPS = 12  # grace x 2^n, capped at MAX_BACKOFF: about half a day of tries, then an operator looks
MAX_BACKOFF = timedelta(hours=1)
BATCH = 500  # object ids per re-enqueued task (a billing-run chunk's size)
KEEP_DONE = timedelta(days=7)


def grace() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "TARIF_HANDOFF_GRACE_SECONDS", 120)))


def _enqueue_collection(ids: list[int]) -> None:
    enqueue("billing.collect_invoices", args=[ids])


def _enqueue_invoice_render(ids: list[int]) -> None:
    enqueue("invoices.render_pdf", kwargs={"invoice_ids": ids})


def _enqueue_credit_note_render(ids: list[int]) -> None:
    enqueue("invoices.render_pdf", kwargs={"credit_note_ids": ids})


def _enqueue_notifications(ids: list[int]) -> None:
    for log_id in ids:
        enqueue("customers.notification_deliver", args=[log_id])


ENQUEUE: dict[str, Callable[[list[int]], None]] = {
    Kind.COLLECT_INVOICE: _enqueue_collection,
    Kind.RENDER_INVOICE: _enqueue_invoice_render,
    Kind.RENDER_CREDIT_NOTE: _enqueue_credit_note_render,
    Kind.NOTIFICATION: _enqueue_notifications,
}


def handoffs_record(*, kind: str, object_ids: Iterable[int], at: datetime | None = None) -> list[int]:
    """Record the hand-offs in the caller's transaction; returns the ids recorded.

    An object has at most one hand-off of a kind (an invoice is issued once): recording it
    again is a no-op, so a retried transaction never doubles the work.
    """
    ids = sorted({int(pk) for pk in object_ids})
    if not ids:
        return []
    at = at or timezone.now()
    due = at + grace()
    with transaction.atomic(savepoint=False):
        Handoff.objects.bulk_create(
            [Handoff(kind=kind, object_id=pk, created_at=at, next_attempt_at=due) for pk in ids],
            ignore_conflicts=True,
            batch_size=1000,
        )
    return ids


def handoff_enqueue_on_commit(*, kind: str, object_ids: Iterable[int]) -> list[int]:
    """Record the hand-offs now, and enqueue their task once the transaction commits.

    The enqueue is only the fast path: if it never happens (a crash, a broker outage) the
    sweeper enqueues the same task from the recorded rows.
    """
    ids = handoffs_record(kind=kind, object_ids=object_ids)
    if ids:
        enqueue = ENQUEUE[kind]
        transaction.on_commit(lambda: enqueue(ids), robust=True)
    return ids


def handoffs_complete(*, kind: str, object_ids: Iterable[int]) -> int:
    """Mark these hand-offs handled (a no-op for objects that had none)."""
    ids = [int(pk) for pk in object_ids]
    if not ids:
        return 0
    return Handoff.objects.filter(kind=kind, object_id__in=ids, done_at__isnull=True).update(done_at=timezone.now())


def _backoff(sweeps: int) -> timedelta:
    return min(grace() * (2 ** max(sweeps - 1, 0)), MAX_BACKOFF)


def handoffs_sweep(*, now: datetime | None = None, limit: int = 5000) -> int:
    """Enqueue the task of every hand-off still pending after its grace period; returns how many.

    The rows are claimed (their next attempt pushed back) and committed before anything is
    sent to the broker: no broker call while holding row locks, and two sweepers running at
    once never enqueue the same row twice.
    """
    now = now or timezone.now()
    with transaction.atomic():
        due = Handoff.objects.filter(done_at__isnull=True, next_attempt_at__lte=now, attempts__lt=MAX_SWEEPS)
        due = handoffs_claim_qs(due)
        claimed = list(due.order_by("next_attempt_at", "pk").values_list("pk", "kind", "object_id", "attempts")[:limit])
        by_sweeps: dict[int, list[int]] = defaultdict(list)
        for pk, _kind, _object_id, attempts in claimed:
            by_sweeps[attempts + 1].append(pk)
        for sweeps, pks in by_sweeps.items():
            Handoff.objects.filter(pk__in=pks).update(attempts=sweeps, next_attempt_at=now + _backoff(sweeps))
    by_kind: dict[str, list[int]] = defaultdict(list)
    for _pk, kind, object_id, _attempts in claimed:
        by_kind[kind].append(object_id)
    enqueued = 0
    for kind, ids in by_kind.items():
        logger.warning("hand-off sweeper: %d %s hand-off(s) not done after their grace period", len(ids), kind)
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            try:
                ENQUEUE[kind](batch)
            except Exception:  # broker down: the rows stay pending and are swept again later
                logger.exception("hand-off sweeper: could not enqueue %d %s hand-off(s)", len(batch), kind)
                continue
            enqueued += len(batch)
    Handoff.objects.filter(done_at__lt=now - KEEP_DONE).delete()
    return enqueued


def handoffs_overdue(*, now: datetime | None = None) -> dict[str, int]:
    """Pending hand-offs past their grace period, by kind (operations page and metrics)."""
    now = now or timezone.now()
    pending = Handoff.objects.filter(done_at__isnull=True, created_at__lte=now - grace())
    return dict(pending.order_by().values_list("kind").annotate(count=Count("pk")))


@shared_task(acks_late=True, name="ops.handoffs_sweep")
def handoffs_sweep_task() -> int:
    return 0 if maintenance_active() else handoffs_sweep()
