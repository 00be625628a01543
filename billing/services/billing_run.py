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
(`invoice_one_renewal_per_period`). A run killed mid-way leaves each chunk either
fully committed or not at all; running the billing again picks up what is still due.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from billing import clock
from billing.cycles import CycleSpec, next_boundary
from billing.locks import subscription_qs_for_update
from billing.models import BillingRun, InvoiceItem, ScheduledChange, Subscription, SubscriptionItem, TestClock
from billing.states import BILLABLE_STATUSES

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 500
ProgressCallback = Callable[[BillingRun], None]


@dataclass(frozen=True, slots=True)
class ChunkResult:
    subscriptions: int  # subscriptions of the chunk now caught up (or skipped as not due)
    invoices: int  # invoices issued by the chunk


def chunk_size_setting() -> int:
    return int(getattr(settings, "TARIF_BILLING_CHUNK_SIZE", DEFAULT_CHUNK_SIZE))


def due_subscriptions(*, as_of: datetime, test_clock: TestClock | None = None):
    queryset = Subscription.objects.filter(current_period_end__lte=as_of, status__in=BILLABLE_STATUSES)
    if test_clock is None:
        return queryset.filter(customer__test_clock__isnull=True)
    return queryset.filter(customer__test_clock=test_clock)


def billing_run_start(
    *,
    as_of: datetime | None = None,
    test_clock: TestClock | None = None,
    acting_user: Any = None,
    chunk_size: int | None = None,
    inline: bool | None = None,
    on_progress: ProgressCallback | None = None,
) -> BillingRun:
    """Start (or resume) a billing run up to `as_of`.

    `inline` processes the chunks in this process (the default when tasks run eagerly,
    and always for test clocks); otherwise one Celery task per chunk is queued and the
    run's progress is visible in the admin while workers process them.
    """
    as_of = as_of or (test_clock.frozen_time if test_clock else clock.system_now())
    chunk_size = chunk_size or chunk_size_setting()
    if inline is None:
        inline = bool(settings.CELERY_TASK_ALWAYS_EAGER) or test_clock is not None
    _apply_mid_period_events(as_of=as_of, test_clock=test_clock)
    ids = list(due_subscriptions(as_of=as_of, test_clock=test_clock).order_by("pk").values_list("pk", flat=True))
    run = BillingRun.objects.create(as_of=as_of, test_clock=test_clock, total=len(ids))
    logger.info("billing run %s: %d due subscriptions up to %s", run.pk, len(ids), as_of.isoformat())
    chunks = [ids[start : start + chunk_size] for start in range(0, len(ids), chunk_size)]
    if not chunks:
        billing_run_finish_if_complete(run_id=run.pk)
    elif inline:
        for chunk in chunks:
            billing_run_process_chunk(run_id=run.pk, subscription_ids=chunk)
            if on_progress:
                run.refresh_from_db()
                on_progress(run)
    else:
        from billing.tasks import billing_run_chunk

        def enqueue() -> None:
            for chunk in chunks:
                billing_run_chunk.delay(run.pk, chunk)

        transaction.on_commit(enqueue)
    run.refresh_from_db()
    return run


def _apply_mid_period_events(*, as_of: datetime, test_clock: TestClock | None) -> None:
    """Resume paused subscriptions whose date has come, and apply scheduled changes that
    take effect inside a period (a renewal only picks up those at its boundary)."""
    from billing.selectors import scheduled_changes_due, subscriptions_to_resume
    from billing.services.subscriptions import scheduled_changes_apply_due, subscription_resume

    clock_filter = {"customer__test_clock": test_clock} if test_clock else {"customer__test_clock__isnull": True}
    for subscription in subscriptions_to_resume(as_of=as_of).filter(**clock_filter).select_related("customer"):
        with transaction.atomic():
            subscription_resume(subscription=subscription, at=subscription.resumes_at)
    changes = scheduled_changes_due(as_of=as_of).filter(
        effective_at__lt=F("subscription__current_period_end"),
        **{f"subscription__{key}": value for key, value in clock_filter.items()},
    )
    for change in changes.select_related("subscription", "subscription__customer"):
        with transaction.atomic():
            scheduled_changes_apply_due(subscription=change.subscription, at=change.effective_at)


def billing_run_process_chunk(*, run_id: int, subscription_ids: Sequence[int]) -> ChunkResult:
    """Bill the due periods of these subscriptions; safe to run twice."""
    run = BillingRun.objects.select_related("test_clock").get(pk=run_id)
    remaining = list(subscription_ids)
    invoices = 0
    try:
        # Each pass bills one period per subscription; loop while some are still behind.
        while remaining:
            issued, remaining = _bill_one_period(run=run, subscription_ids=remaining)
            invoices += issued
    except Exception as error:
        BillingRun.objects.filter(pk=run_id).update(failures=F("failures") + 1, last_error=repr(error)[:2000])
        raise
    BillingRun.objects.filter(pk=run_id).update(
        processed=F("processed") + len(subscription_ids), invoices_created=F("invoices_created") + invoices
    )
    billing_run_finish_if_complete(run_id=run_id)
    return ChunkResult(subscriptions=len(subscription_ids), invoices=invoices)


def billing_run_finish_if_complete(*, run_id: int) -> None:
    BillingRun.objects.filter(pk=run_id, status=BillingRun.Status.RUNNING, processed__gte=F("total")).update(
        status=BillingRun.Status.DONE, finished_at=clock.system_now()
    )


def _needs_boundary_work(subscription: Subscription, changes_due: set[int]) -> bool:
    """Something happens at this boundary besides a plain renewal (rare)."""
    boundary = subscription.current_period_end
    trial_ends = subscription.status == Subscription.Status.TRIALING and (
        subscription.trial_end is None or subscription.trial_end <= boundary
    )
    return subscription.cancel_at_period_end or trial_ends or subscription.pk in changes_due


def _bill_one_period(*, run: BillingRun, subscription_ids: Sequence[int]) -> tuple[int, list[int]]:
    """Bill the next due period of each subscription; return (invoices, ids still due).

    Plain renewals (the vast majority) take a bulk path with a fixed number of queries
    per chunk; a subscription with something to do at its boundary (cancel at period
    end, a scheduled change, a trial ending) first goes through
    `subscription_prepare_renewal`, which does that work and says whether to bill it.
    """
    from billing.services.coupons import discount_counter_after_billing, discounts_for_period
    from billing.services.subscriptions import subscription_prepare_renewal
    from billing.services.upcoming import renewal_draft
    from billing.services.usage import usage_for_periods
    from invoices.selectors import standard_tax_rates
    from invoices.services import finalize

    as_of = run.as_of
    with transaction.atomic():
        subscriptions = list(
            subscription_qs_for_update()
            .filter(pk__in=subscription_ids, current_period_end__lte=as_of, status__in=BILLABLE_STATUSES)
            .select_related("customer", "customer__brand", "coupon")
            .prefetch_related("coupon__applies_to")
        )
        if not subscriptions:
            return 0, []
        changes_due = set(
            ScheduledChange.objects.filter(
                subscription_id__in=[subscription.pk for subscription in subscriptions],
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
                .prefetch_related("coupon__applies_to")
            )
        by_id = {subscription.pk: subscription for subscription in to_bill}

        items_by_subscription: dict[int, list[SubscriptionItem]] = defaultdict(list)
        for item in SubscriptionItem.objects.filter(subscription_id__in=by_id).select_related(
            "price", "price__meter", "price__product"
        ):
            items_by_subscription[item.subscription_id].append(item)

        pending_by_subscription: dict[int, list[InvoiceItem]] = defaultdict(list)
        first_subscription_of_customer: dict[int, int] = {}
        for subscription in to_bill:
            first_subscription_of_customer.setdefault(subscription.customer_id, subscription.pk)
        for pending in (
            InvoiceItem.objects.filter(
                Q(subscription_id__in=by_id)
                | Q(subscription__isnull=True, customer_id__in=first_subscription_of_customer),
                invoice__isnull=True,
            )
            .select_related("price", "price__product")
            .order_by("pk")
        ):
            owner = pending.subscription_id or first_subscription_of_customer[pending.customer_id]
            if owner in by_id and by_id[owner].currency == pending.currency:
                pending_by_subscription[owner].append(pending)

        usage = usage_for_periods(
            wanted=[
                (
                    subscription.customer_id,
                    item.price.meter_id,
                    subscription.current_period_start,
                    subscription.current_period_end,
                )
                for subscription in to_bill
                for item in items_by_subscription[subscription.pk]
                if item.price.meter_id is not None
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
                pending_items=pending_by_subscription.get(subscription.pk, ()),
                discounts=discounts_for_period(subscription=subscription),
            )
            if draft.lines:
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
        invoice_ids = finalize.invoices_issue_bulk(items=drafts, at=issued_at, rates=standard_tax_rates())
        _save_renewed(to_bill)
        # Payments hook: one collection task per chunk, queued after this transaction commits.
        from billing.services.payments import collection_enqueue

        collection_enqueue(invoice_ids=invoice_ids)
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
        Subscription.objects.filter(pk__in=ids).update(
            **dict(zip(RENEWAL_COLUMNS, values, strict=True)), updated_at=now
        )
