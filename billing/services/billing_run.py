"""The billing run: invoice every due subscription-period exactly once.

A run selects subscriptions whose current period ended by `as_of` and processes them
in chunks (one Celery task per chunk, or inline). For each subscription a chunk:
locks it, re-checks that its period is still due (a duplicated task or a rerun finds
it already advanced and skips it), builds the renewal invoice (recurring items in
advance for the new period, metered usage in arrears for the ended one, pending
one-off and proration items, discounts, tax, customer credit), issues all the
chunk's invoices in bulk (numbers reserved once per brand), and advances the
subscriptions to their next period, all in one transaction. A subscription behind by
several periods (a test clock advanced by a year) is billed period after period.

Exactly once: the advance of the period and the invoice commit together, and the
database refuses a second renewal invoice for the same subscription and period start
(`invoice_one_renewal_per_period`). A run killed mid-way leaves each pass of a chunk
either fully committed or not at all; running the billing again picks up what is still
due.

One bad subscription never stops the others (issue 13): a pass first bills its
subscriptions in bulk inside a savepoint; if that fails with a data or code error, the
savepoint is rolled back (no half-built invoice, no burned number) and the pass bills
them one by one, each in its own savepoint. A subscription that still fails is recorded
on the run (`BillingRunFailure`, with its reason), as an event
(`billing_run.subscription_failed`) and in the metrics; its period stays due, so the
next run retries it, and only it (and whatever else is still due). Lost connections
and deadlocks are not a subscription's fault: they stop the chunk, which is retried.

The run's record stays true: counters move with F() in the transaction that commits the
invoices they count; a chunk is counted as processed once (`BillingRunChunk`), even if
its task is delivered twice; `heartbeat_at` moves with every committed pass, and
`billing_run_sweep_stale` marks runs without progress `interrupted`. Only one run at a
time bills a scope (live, or one test clock): an advisory lock on PostgreSQL held by
the starting process, and a partial unique constraint on running runs everywhere.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Max, Q
from django.utils.translation import gettext as _

from billing.cycles import CycleSpec, next_boundary
from billing.limits import MAX_TOTAL
from billing.locks import billing_run_scope_lock, subscription_qs_for_update
from billing.models import (
    LIVE_SCOPE,
    BillingRun,
    BillingRunChunk,
    BillingRunFailure,
    ScheduledChange,
    Subscription,
    TestClock,
)
from billing.selectors import (
    due_q,
    due_subscriptions,
    pending_invoice_items_bulk,
    scheduled_changes_due,
    subscription_items_snapshots_bulk,
    subscriptions_to_cancel,
    subscriptions_to_resume,
)
from billing.services.coupons import (
    customer_discounts_prefetch,
    discount_counter_after_billing,
    discounts_for_period,
    subscription_discounts_prefetch,
)
from billing.services.subscriptions import (
    SubscriptionError,
    scheduled_changes_apply_due,
    subscription_cancel_scheduled,
    subscription_prepare_renewal,
    subscription_resume,
)
from billing.services.upcoming import renewal_draft, renewal_usage_windows
from billing.services.usage import usage_for_periods
from billing.services.usage_thresholds import usage_thresholds_evaluate_due
from config import clock
from config.events.log import event_record
from config.jobs import enqueue
from config.types import ActingUser
from customers.locks import customers_lock_balance
from invoices.selectors import standard_tax_rates
from invoices.services import finalize

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 500
DEFAULT_STALE_MINUTES = 15
# The largest invoice the run issues is the documented bound on totals (billing/limits.py):
# entry points refuse larger amounts, and the run refuses a row that got in anyway.
MAX_INVOICE_AMOUNT = MAX_TOTAL
ProgressCallback = Callable[[BillingRun], None]


class BillingRunError(SubscriptionError):
    """A billing run refused, or a subscription a run could not invoice."""

    code = "billing_run_error"
    http_status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message, code=self.code)


class BillingRunAlreadyRunning(BillingRunError):
    code = "billing_run_already_running"

    def __init__(self, *, scope: str, run: BillingRun | None) -> None:
        self.run_id = run.pk if run is not None else None
        self.scope = scope
        if run is None:
            message = _("A billing run is already running for this scope (%(scope)s); wait for it to finish.") % {
                "scope": scope_label(scope)
            }
        else:
            message = _(
                "A billing run is already running for this scope (%(scope)s): run %(run)s, started at %(started)s. "
                "Wait for it to finish; a run without progress for %(minutes)s minutes is marked interrupted."
            ) % {
                "scope": scope_label(scope),
                "run": run.pk,
                "started": run.started_at.isoformat(timespec="seconds"),
                "minutes": stale_minutes_setting(),
            }
        super().__init__(message)


class InvoiceAmountOutOfRange(BillingRunError):
    code = "amount_out_of_range"


def scope_label(scope: str) -> str:
    if scope == LIVE_SCOPE:
        return _("live customers")
    return _("test clock %(id)s") % {"id": scope.removeprefix("clock:")}


def billing_run_scope(*, test_clock: TestClock | None) -> str:
    """The scope a run bills: one run at a time per scope."""
    return LIVE_SCOPE if test_clock is None else f"clock:{test_clock.pk}"


@dataclass(frozen=True, slots=True)
class ChunkResult:
    subscriptions: int  # subscriptions of the chunk now caught up (or skipped as not due)
    invoices: int  # invoices issued by the chunk


def chunk_size_setting() -> int:
    return int(getattr(settings, "TARIF_BILLING_CHUNK_SIZE", DEFAULT_CHUNK_SIZE))


def stale_minutes_setting() -> int:
    return int(getattr(settings, "TARIF_BILLING_RUN_STALE_MINUTES", DEFAULT_STALE_MINUTES))


def billing_run_start(
    *,
    as_of: datetime | None = None,
    test_clock: TestClock | None = None,
    acting_user: ActingUser = None,
    chunk_size: int | None = None,
    inline: bool | None = None,
    on_progress: ProgressCallback | None = None,
    subscription_ids: Sequence[int] | None = None,
) -> BillingRun:
    """Start (or resume) a billing run up to `as_of`.

    `inline` processes the chunks in this process (the default when tasks run eagerly,
    and always for test clocks); otherwise one Celery task per chunk is queued and the
    run's progress is visible in the admin while workers process them.
    `subscription_ids` limits the run to those subscriptions (retrying a run's failures).
    Raises `BillingRunAlreadyRunning` while another run bills the same scope.
    """
    as_of = as_of or (test_clock.frozen_time if test_clock else clock.system_now())
    chunk_size = chunk_size or chunk_size_setting()
    if inline is None:
        inline = bool(settings.CELERY_TASK_ALWAYS_EAGER) or test_clock is not None
    scope = billing_run_scope(test_clock=test_clock)
    with billing_run_scope_lock(scope=scope) as locked:
        if not locked:
            # Another process is starting a run, or processing one inline, for this scope.
            raise BillingRunAlreadyRunning(scope=scope, run=_running_run(scope=scope))
        _close_abandoned_run(scope=scope)
        _apply_mid_period_events(as_of=as_of, test_clock=test_clock)
        # Issue 16 (usage): thresholds reached before the renewals are reported (and billed) first.
        usage_thresholds_evaluate_due(as_of=as_of, test_clock=test_clock)
        due = due_subscriptions(as_of=as_of, test_clock=test_clock)
        if subscription_ids is not None:
            due = due.filter(pk__in=list(subscription_ids))
        ids = list(due.order_by("pk").values_list("pk", flat=True))
        try:
            with transaction.atomic():
                run = BillingRun.objects.create(
                    as_of=as_of,
                    test_clock=test_clock,
                    scope=scope,
                    inline=inline,
                    total=len(ids),
                    heartbeat_at=clock.system_now(),
                )
        except IntegrityError as error:  # SQLite, or a starter that raced past the lock
            raise BillingRunAlreadyRunning(scope=scope, run=_running_run(scope=scope)) from error
        logger.info("billing run %s: %d due subscriptions up to %s", run.pk, len(ids), as_of.isoformat())
        chunks = [ids[start : start + chunk_size] for start in range(0, len(ids), chunk_size)]
        if not chunks:
            billing_run_finish_if_complete(run_id=run.pk)
        elif inline:
            try:
                for chunk in chunks:
                    billing_run_process_chunk(run_id=run.pk, subscription_ids=chunk)
                    if on_progress:
                        run.refresh_from_db()
                        on_progress(run)
            except BaseException as error:
                # This process was the run's only worker: the run stops here, visibly
                # (failed on an error, interrupted on Ctrl-C or a shutdown).
                status = BillingRun.Status.FAILED if isinstance(error, Exception) else BillingRun.Status.INTERRUPTED
                _run_stop(run_id=run.pk, status=status, reason=repr(error)[:2000])
                raise
        else:

            def enqueue_chunks() -> None:
                for chunk in chunks:
                    enqueue("billing.run_chunk", args=[run.pk, chunk])

            # If the hand-off is lost, the run makes no progress and the sweeper closes it;
            # the next run bills what is still due.
            transaction.on_commit(enqueue_chunks)
    run.refresh_from_db()
    return run


def billing_run_retry_failures(*, run: BillingRun, acting_user: ActingUser = None) -> BillingRun:
    """Bill again, now, only the subscriptions `run` could not invoice (after a correction)."""
    subscription_ids = list(
        BillingRunFailure.objects.filter(run=run, resolved_at__isnull=True).values_list("subscription_id", flat=True)
    )
    if not subscription_ids:
        raise BillingRunError(_("This billing run has no failed subscription left to retry."))
    return billing_run_start(
        as_of=run.as_of, test_clock=run.test_clock, acting_user=acting_user, subscription_ids=subscription_ids
    )


def _running_run(*, scope: str) -> BillingRun | None:
    return BillingRun.objects.filter(scope=scope, status=BillingRun.Status.RUNNING).first()


def _is_stale(run: BillingRun, *, now: datetime) -> bool:
    last_progress = run.heartbeat_at or run.started_at
    return last_progress < now - timedelta(minutes=stale_minutes_setting())


def _close_abandoned_run(*, scope: str) -> None:
    """Close the scope's running run if nobody works on it any more, else refuse to start.

    Called with the scope's lock held. On PostgreSQL, an inline run's process holds that
    lock while it works, so holding it now proves that process is gone (killed). A run
    whose chunks are on Celery workers is abandoned only when it has made no progress
    for the stale delay (the sweeper's rule).
    """
    running = _running_run(scope=scope)
    if running is None:
        return
    now = clock.system_now()
    if running.inline and connection.vendor == "postgresql":
        reason = _("Its process stopped before the end (killed or lost); the next run bills what is still due.")
    elif _is_stale(running, now=now):
        reason = _stale_reason(running)
    else:
        raise BillingRunAlreadyRunning(scope=scope, run=running)
    _run_stop(run_id=running.pk, status=BillingRun.Status.INTERRUPTED, reason=reason, now=now)


def _stale_reason(run: BillingRun) -> str:
    last_progress = run.heartbeat_at or run.started_at
    return _(
        "No progress since %(since)s (more than %(minutes)s minutes): its chunks were lost or its workers "
        "stopped. The next run bills what is still due."
    ) % {"since": last_progress.isoformat(timespec="seconds"), "minutes": stale_minutes_setting()}


def _run_stop(*, run_id: int, status: str, reason: str, now: datetime | None = None) -> bool:
    """Move a running run to `failed` or `interrupted` with its reason; False if it was not running."""
    now = now or clock.system_now()
    try:
        with transaction.atomic():
            stopped = BillingRun.objects.filter(pk=run_id, status=BillingRun.Status.RUNNING).update(
                status=status, finished_at=now, last_error=reason
            )
            if stopped:
                event_record(
                    type=f"billing_run.{status}",
                    object_type="billing_run",
                    object_id=run_id,
                    customer_id=None,
                    occurred_at=now,
                    data={"reason": reason},
                )
    except Exception:  # the database is away: the sweeper will close the run later
        logger.exception("billing run %s: could not record that it stopped", run_id)
        return False
    if stopped:
        logger.warning("billing run %s %s: %s", run_id, status, reason)
    return bool(stopped)


def billing_run_sweep_stale(*, now: datetime | None = None) -> list[BillingRun]:
    """Mark running runs without progress for the stale delay `interrupted`, with the reason.

    Their remaining subscriptions are still due: the next run (the beat's every 15
    minutes, `manage.py bill`, or the console) bills them. A late chunk of an
    interrupted run does nothing.
    """
    now = now or clock.system_now()
    cutoff = now - timedelta(minutes=stale_minutes_setting())
    candidates = BillingRun.objects.filter(status=BillingRun.Status.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    swept = []
    for run in candidates.order_by("pk"):
        if run.inline and connection.vendor == "postgresql":
            with billing_run_scope_lock(scope=run.scope) as free:
                if not free:
                    continue  # its process is alive and holds the scope: a long pass, not a dead run
        if _run_stop(run_id=run.pk, status=BillingRun.Status.INTERRUPTED, reason=_stale_reason(run), now=now):
            run.refresh_from_db()
            swept.append(run)
    return swept


def _apply_mid_period_events(*, as_of: datetime, test_clock: TestClock | None) -> None:
    """Resume paused subscriptions whose date has come, and apply scheduled changes that
    take effect inside a period (a renewal only picks up those at its boundary)."""
    clock_filter: dict[str, TestClock | bool] = (
        {"customer__test_clock": test_clock} if test_clock else {"customer__test_clock__isnull": True}
    )
    for subscription in subscriptions_to_resume(as_of=as_of).filter(**clock_filter).select_related("customer"):
        with transaction.atomic():
            subscription_resume(subscription=subscription, at=subscription.resumes_at)
    for subscription in subscriptions_to_cancel(as_of=as_of).filter(**clock_filter):
        with transaction.atomic():
            subscription_cancel_scheduled(subscription=subscription)
    changes = scheduled_changes_due(as_of=as_of).filter(
        effective_at__lt=F("subscription__current_period_end"),
        **{f"subscription__{key}": value for key, value in clock_filter.items()},
    )
    for change in changes.select_related("subscription", "subscription__customer"):
        with transaction.atomic():
            scheduled_changes_apply_due(subscription=change.subscription, at=change.effective_at)


def billing_run_process_chunk(*, run_id: int, subscription_ids: Sequence[int]) -> ChunkResult:
    """Bill the due periods of these subscriptions; safe to run twice (counted once)."""
    run = BillingRun.objects.select_related("test_clock").get(pk=run_id)
    ids = sorted(set(subscription_ids))
    if run.status != BillingRun.Status.RUNNING or not ids:
        logger.info("billing run %s is %s: chunk skipped", run_id, run.status)
        return ChunkResult(subscriptions=0, invoices=0)
    chunk, _created = BillingRunChunk.objects.get_or_create(
        run=run, first_subscription_id=ids[0], defaults={"size": len(ids)}
    )
    if chunk.status == BillingRunChunk.Status.DONE:
        return ChunkResult(subscriptions=0, invoices=0)  # a duplicate delivery of a finished chunk
    remaining = ids
    invoices = 0
    try:
        # Each pass bills one period per subscription; loop while some are still behind.
        while True:
            outcome = _bill_one_pass(run=run, chunk=chunk, subscription_ids=remaining)
            invoices += outcome.invoices
            remaining = outcome.still_due
            if outcome.chunk_done:
                break
    except Exception as error:
        BillingRun.objects.filter(pk=run_id).update(last_error=repr(error)[:2000])
        raise
    billing_run_finish_if_complete(run_id=run_id)
    _statistics_refresh_if_outgrown()
    return ChunkResult(subscriptions=len(ids), invoices=invoices)


# The tables a billing run grows, in the order they are written. Their statistics matter even
# to primary-key lookups: the triggers' and foreign keys' cached plans are made on the first
# rows and kept until the table is analysed.
RUN_WRITTEN_TABLES = (
    "invoices_invoiceline",
    "invoices_invoice",
    "invoices_balancetransaction",
    "billing_domainevent",
    "ledger_journalentry",
    "ledger_journalline",
    "ledger_revenueschedule",
)

# A table whose statistics describe at least this many 8 kB pages keeps them: plans made on
# them stay right as it grows, and autovacuum re-analyses it from there.
STATISTICS_SETTLED_PAGES = 128

_OUTGROWN_SQL = """
SELECT c.relname FROM pg_class AS c
 WHERE c.oid = ANY(%s::regclass[]) AND c.relpages < %s
   AND pg_relation_size(c.oid) / current_setting('block_size')::int > GREATEST(2 * c.relpages, 8)
 ORDER BY c.relname
"""


def _statistics_refresh_if_outgrown() -> list[str]:
    """ANALYZE the run's tables whose statistics describe a table at most half their size.

    A run on new or emptied tables (a new installation, a benchmark) otherwise plans on
    "empty": the line trigger's lookup of its invoice (`tarif_invoice_line_frozen`), the
    ledger's balance check and the foreign-key checks cache a sequential scan for what is an
    index lookup, and every chunk scans everything the previous ones wrote, until autovacuum
    gets to the table (measured: a chunk's line COPY 0.5 s -> 6.5 s over the first seven
    chunks; docs/PERFORMANCE.md, issue 19). After every chunk (Celery chunks have no
    coordinator) one catalogue query compares each table's size on disk with its statistics;
    only small, outgrown tables are analysed (after the first chunk, then at most once per
    doubling while they stay under `STATISTICS_SETTLED_PAGES`), never a production-sized one.
    Returns the tables analysed.
    """
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(_OUTGROWN_SQL, [list(RUN_WRITTEN_TABLES), STATISTICS_SETTLED_PAGES])
        outgrown = [name for (name,) in cursor.fetchall()]
        for name in outgrown:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(name)}")
    if outgrown:
        logger.info("billing run: analysed %s (outgrown statistics)", ", ".join(outgrown))
    return outgrown


def billing_run_finish_if_complete(*, run_id: int) -> None:
    finished = BillingRun.objects.filter(pk=run_id, status=BillingRun.Status.RUNNING, processed__gte=F("total")).update(
        status=BillingRun.Status.DONE, finished_at=clock.system_now()
    )
    if finished:
        # The console home's counts (subscriptions due, receivables) changed: refresh them now
        # rather than at beat's next minute. Only sooner: beat's minutely refresh is the durable path.
        transaction.on_commit(lambda: enqueue("reports.refresh_home_figures"))


@dataclass(frozen=True, slots=True)
class _PassOutcome:
    invoices: int
    still_due: list[int]
    chunk_done: bool


def _is_infrastructure_error(error: BaseException) -> bool:
    """Errors that are nobody's subscription's fault: the chunk stops and is retried whole."""
    return isinstance(error, OperationalError | InterfaceError)


def _bill_one_pass(*, run: BillingRun, chunk: BillingRunChunk, subscription_ids: Sequence[int]) -> _PassOutcome:
    """One period for each subscription, isolated per subscription, committed with the counters."""
    with transaction.atomic():
        rows = list(
            subscription_qs_for_update()
            .filter(due_q(as_of=run.as_of), pk__any_of=subscription_ids)
            .values_list("pk", "customer_id")
        )
        locked = [subscription_id for subscription_id, _customer_id in rows]
        # The one lock order: the chunk's customers (their balances) right after its
        # subscriptions, for the whole pass: a cancellation's last invoice locks its customer
        # and number series before the renewals need every customer of the chunk, and a
        # pass billed one subscription at a time keeps each one's series until it commits.
        customers_lock_balance(customer_ids=[customer_id for _subscription_id, customer_id in rows])
        still_due: list[int]
        issued, still_due = 0, []
        failed: dict[int, Exception] = {}
        # The pass's invoices are numbered at its end, just before the run's counters: the
        # brand's number series stays locked only for that (docs/PERFORMANCE.md, issue 20).
        numbering = finalize.BulkNumbering()
        if locked:
            try:
                with transaction.atomic():
                    batch = finalize.BulkNumbering()
                    issued, still_due = _bill_one_period(run=run, subscription_ids=locked, numbering=batch)
                numbering.extend(batch)
            except Exception as error:
                if _is_infrastructure_error(error):
                    raise
                # Somebody in the chunk cannot be invoiced: find who, bill the others.
                logger.warning("billing run %s: a pass failed (%r); billing one by one", run.pk, error)
                issued, still_due = 0, []
                for subscription_id in locked:
                    try:
                        with transaction.atomic():
                            batch = finalize.BulkNumbering()  # dropped with its savepoint on failure
                            one_issued, one_still_due = _bill_one_period(
                                run=run, subscription_ids=[subscription_id], numbering=batch
                            )
                    except Exception as one_error:
                        if _is_infrastructure_error(one_error):
                            raise
                        failed[subscription_id] = one_error
                        continue
                    numbering.extend(batch)
                    issued += one_issued
                    still_due += one_still_due
        now = clock.system_now()
        new_failures = _failures_record(run=run, failed=failed, now=now) if failed else 0
        succeeded = [subscription_id for subscription_id in locked if subscription_id not in failed]
        if succeeded:
            BillingRunFailure.objects.filter(subscription_id__in=succeeded, resolved_at__isnull=True).update(
                resolved_at=now, resolution=BillingRunFailure.Resolution.INVOICED
            )
        chunk_done = not still_due
        run_counters: dict[str, Any] = {"invoices_created": F("invoices_created") + issued, "heartbeat_at": now}
        if new_failures:
            run_counters["failures"] = F("failures") + new_failures
        chunk_counters: dict[str, Any] = {"invoices_created": F("invoices_created") + issued}
        if chunk_done:
            chunk_counters.update(status=BillingRunChunk.Status.DONE, finished_at=now)
        counted = BillingRunChunk.objects.filter(pk=chunk.pk, status=BillingRunChunk.Status.PENDING).update(
            **chunk_counters
        )
        if chunk_done and counted:
            run_counters["processed"] = F("processed") + chunk.size
        # Number series (rank 900) after every other write of the pass, then the run's row.
        finalize.invoices_number_bulk(numbering=numbering)
        # Last statement before the commit: the run's row stays locked for the shortest time.
        BillingRun.objects.filter(pk=run.pk).update(**run_counters)
    return _PassOutcome(invoices=issued, still_due=still_due, chunk_done=chunk_done)


def _failure_code(error: Exception) -> str:
    code = getattr(error, "code", None)
    return code if isinstance(code, str) and code else type(error).__name__


def _failure_message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(str(message) for message in error.messages)[:2000]
    return (str(error) or repr(error))[:2000]


def _failures_record(*, run: BillingRun, failed: dict[int, Exception], now: datetime) -> int:
    """Record the subscriptions this pass could not invoice; return how many are new to the run."""
    new = 0
    for subscription in Subscription.objects.filter(pk__in=list(failed)).order_by("pk"):
        error = failed[subscription.pk]
        code, message = _failure_code(error), _failure_message(error)
        earlier = BillingRunFailure.objects.filter(subscription=subscription, resolved_at__isnull=True).exclude(run=run)
        earlier_attempts = earlier.aggregate(attempts=Max("attempts"))["attempts"] or 0
        failure = BillingRunFailure.objects.filter(run=run, subscription=subscription).first()
        if failure is None:
            failure = BillingRunFailure.objects.create(
                run=run,
                subscription=subscription,
                period_start=subscription.current_period_end,
                code=code,
                message=message,
                attempts=earlier_attempts + 1,
                last_attempt_at=now,
            )
            new += 1
        else:  # the same run met it again (a chunk delivered twice)
            failure.attempts += 1
            failure.code, failure.message, failure.last_attempt_at = code, message, now
            failure.resolved_at, failure.resolution = None, ""
            failure.save(update_fields=["attempts", "code", "message", "last_attempt_at", "resolved_at", "resolution"])
        earlier.update(resolved_at=now, resolution=BillingRunFailure.Resolution.RETRIED)
        event_record(
            type="billing_run.subscription_failed",
            object_type="subscription",
            object_id=subscription.pk,
            customer_id=subscription.customer_id,
            occurred_at=now,
            data={
                "run": run.pk,
                "code": code,
                "message": message,
                "period_start": subscription.current_period_end,
                "attempts": failure.attempts,
            },
        )
        logger.warning("billing run %s: subscription %s not invoiced (%s): %s", run.pk, subscription.pk, code, message)
    return new


def _check_invoice_amounts(draft: Any) -> None:
    """Refuse a draft whose amounts cannot be stored, before anything is written."""
    total = 0
    for line in draft.lines:
        total += line.amount
        if abs(line.amount) > MAX_INVOICE_AMOUNT or abs(total) > MAX_INVOICE_AMOUNT:
            raise InvoiceAmountOutOfRange(
                _(
                    "The invoice for subscription %(subscription)s would exceed the largest amount an invoice can "
                    "hold (%(limit)s minor units): line '%(line)s' is %(amount)s. Correct or delete the item, then "
                    "run the billing again."
                )
                % {
                    "subscription": draft.subscription_id,
                    "limit": MAX_INVOICE_AMOUNT,
                    "line": line.description[:80],
                    "amount": line.amount,
                }
            )


def _needs_boundary_work(subscription: Subscription, changes_due: set[int]) -> bool:
    """Something happens at this boundary besides a plain renewal (rare)."""
    boundary = subscription.current_period_end
    trial_ends = subscription.status == Subscription.Status.TRIALING and (
        subscription.trial_end is None or subscription.trial_end <= boundary
    )
    cancels = subscription.cancel_at is not None and subscription.cancel_at <= boundary
    return subscription.cancel_at_period_end or cancels or trial_ends or subscription.pk in changes_due


def _bill_one_period(
    *, run: BillingRun, subscription_ids: Sequence[int], numbering: finalize.BulkNumbering
) -> tuple[int, list[int]]:
    """Bill the next due period of each subscription; return (invoices, ids still due).

    Runs inside the caller's savepoint (`_bill_one_pass`), which undoes all of it if any
    subscription fails. The invoices are inserted unnumbered into `numbering`; the pass
    numbers them at its end.

    Plain renewals (the vast majority) take a bulk path with a fixed number of queries
    per chunk; a subscription with something to do at its boundary (cancel at period
    end, a scheduled change, a trial ending) first goes through
    `subscription_prepare_renewal`, which does that work and says whether to bill it.
    """
    as_of = run.as_of
    subscriptions = list(
        subscription_qs_for_update()
        .filter(due_q(as_of=as_of), pk__any_of=subscription_ids)
        .select_related("customer", "customer__brand", "coupon")
        .prefetch_related("coupon__applies_to", subscription_discounts_prefetch(), customer_discounts_prefetch())
    )
    if not subscriptions:
        return 0, []
    changes_due = set(
        ScheduledChange.objects.filter(
            subscription_id__any_of=[subscription.pk for subscription in subscriptions],
            status=ScheduledChange.Status.PENDING,
            effective_at__lte=F("subscription__current_period_end"),
        ).values_list("subscription_id", flat=True)
    )
    to_bill: list[Subscription] = []
    reloaded: list[int] = []
    for subscription in subscriptions:
        if not _needs_boundary_work(subscription, changes_due):
            to_bill.append(subscription)
            continue
        prepared = subscription_prepare_renewal(subscription=subscription, at=as_of)
        if prepared is not None:
            reloaded.append(prepared.pk)
    if reloaded:
        # Their items, status or coupon changed: read them again like the others.
        to_bill += list(
            Subscription.objects.filter(pk__in=reloaded)
            .select_related("customer", "customer__brand", "coupon")
            .prefetch_related("coupon__applies_to", subscription_discounts_prefetch(), customer_discounts_prefetch())
        )
    by_id = {subscription.pk: subscription for subscription in to_bill}

    # What each invoice holds is chosen by the selectors the upcoming-invoice preview
    # uses (billing/selectors.py, billing/services/upcoming.py), here in bulk.
    items_by_subscription = subscription_items_snapshots_bulk(subscription_ids=by_id)
    pending_by_subscription = pending_invoice_items_bulk(subscriptions=to_bill)
    usage = usage_for_periods(
        wanted=[
            window
            for subscription in to_bill
            for window in renewal_usage_windows(subscription=subscription, items=items_by_subscription[subscription.pk])
        ]
    )

    drafts = []
    still_due: list[int] = []
    for subscription in to_bill:
        boundary = subscription.current_period_end
        spec = CycleSpec.from_dict(subscription.cycle)
        period_end = next_boundary(
            spec, anchor=subscription.billing_cycle_anchor, tz=subscription.customer.timezone, after=boundary
        )
        draft = renewal_draft(
            subscription=subscription,
            items=items_by_subscription[subscription.pk],
            period_start=boundary,
            period_end=period_end,
            usage=usage,
            pending_items=pending_by_subscription[subscription.pk],
            discounts=discounts_for_period(subscription=subscription),
        )
        if draft.lines:
            _check_invoice_amounts(draft)
            drafts.append((draft, subscription.customer))
        subscription.discount_periods_applied = discount_counter_after_billing(
            coupon=subscription.coupon, periods_applied=subscription.discount_periods_applied
        )
        subscription.current_period_start = boundary
        subscription.current_period_end = period_end
        if period_end <= as_of:
            still_due.append(subscription.pk)

    # Test clocks issue each invoice when the simulated time reaches its period
    # (at=None: at the draft's period start); real runs issue them now.
    issued_at = None if run.test_clock_id is not None else clock.system_now()
    invoice_ids = finalize.invoices_issue_bulk(
        items=drafts, at=issued_at, rates=standard_tax_rates(), numbering=numbering
    )
    _save_renewed(to_bill)
    # Collection: one task per chunk (durable hand-off), queued after this transaction commits.
    finalize.collection_enqueue(invoice_ids=invoice_ids)
    # Subscriptions canceled at their boundary, or no longer due, are simply done.
    return len(invoice_ids), still_due


RENEWAL_COLUMNS = ("current_period_start", "current_period_end", "discount_periods_applied")


def _save_renewed(subscriptions: Sequence[Subscription]) -> None:
    """Write the renewed subscriptions' new period in a few UPDATEs.

    The subscriptions of a chunk mostly move to the same period, so rows are grouped by
    their new values: one `UPDATE ... WHERE id IN (...)` per group. (Django's
    bulk_update builds a CASE per column and row, which cost more than the rest of
    the run.)
    """
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for subscription in subscriptions:
        values = tuple(getattr(subscription, column) for column in RENEWAL_COLUMNS)
        groups[values].append(subscription.pk)
    now = clock.system_now()
    for values, ids in groups.items():
        Subscription.objects.filter(pk__any_of=ids).update(
            **dict(zip(RENEWAL_COLUMNS, values, strict=True)), updated_at=now
        )
