"""Status changes: cancel (now or at period end) and undo, pause, resume, trial end, renewal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.utils.translation import gettext as _

from billing.cycles import Period
from billing.models import (
    InvoiceItem,
    ScheduledChange,
    Subscription,
    SubscriptionChange,
)
from billing.proration import cancellation_credit
from billing.selectors import (
    ItemSnapshot,
    item_charges,
    pending_invoice_items,
    resume_period,
    subscription_items_snapshot,
)
from billing.services.coupons import (
    current_period_discounts,
    discounts_for_period,
)
from billing.services.credits import credits_apply_basis
from billing.services.subscriptions.common import (
    Status,
    SubscriptionConflict,
    SubscriptionError,
    _advance_discount_counter,
    _set_status,
    arrears_restart_at,
    arrears_used_items,
    balance_credit,
    change_record,
    instant,
    invoice_issue,
    mrr_of,
    subscription_copy,
    subscription_event,
    subscription_lock,
)
from billing.services.subscriptions.schedules import scheduled_changes_apply_due
from billing.services.upcoming import renewal_draft, usage_for_period
from billing.states import BILLABLE_STATUSES, assert_transition
from config.types import ActingUser
from invoices.selectors import renewal_exists
from invoices.types import DraftInvoice


@transaction.atomic(savepoint=False)
def subscription_transition(
    *,
    subscription: Subscription,
    to_status: str,
    at: datetime | None = None,
    reason: str = "",
    acting_user: ActingUser = None,
) -> Subscription:
    """Move the subscription to `to_status` if the state table allows it (payments and dunning use this).

    Cancel, pause and resume have their own services, which also settle money and
    periods; this one only changes the status (and the end and pause timestamps).
    """
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    previous = _set_status(locked, to_status)
    if to_status == Status.CANCELED:
        locked.canceled_at = locked.canceled_at or at
        locked.ended_at = at
        locked.cancel_at_period_end = False
        locked.cancellation_reason = reason[:200] or locked.cancellation_reason
    elif to_status == Status.PAUSED:
        locked.paused_at = at
    elif previous == Status.PAUSED:
        locked.paused_at = None
        locked.resumes_at = None
    locked.save()
    subscription_event(
        type="customer.subscription.deleted" if to_status == Status.CANCELED else "customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        reason=reason,
    )
    return locked


def _owed_so_far_draft(
    *,
    subscription: Subscription,
    items: Sequence[ItemSnapshot],
    usage_items: Sequence[ItemSnapshot],
    at: datetime,
    new_period: Period | None,
    billing_reason: str,
) -> DraftInvoice:
    """An invoice at `at` for usage since the current period started and pending items,
    plus `items` in advance for `new_period` when one starts (resume, early trial end)."""
    usage_period = (
        Period(start=subscription.current_period_start, end=at) if at > subscription.current_period_start else None
    )
    # Metered usage and licensed items billed in arrears owe their time so far (issue 16, cycles).
    metered = [item for item in usage_items if item.metered or item.in_arrears] if usage_period is not None else []
    usage = usage_for_period(subscription=subscription, items=metered, start=subscription.current_period_start, end=at)
    return renewal_draft(
        subscription=subscription,
        tz=subscription.customer.timezone,
        items=items,
        usage_items=metered,
        period_start=new_period.start if new_period else at,
        period_end=new_period.end if new_period else at,
        usage=usage,
        usage_period=usage_period,
        pending_items=pending_invoice_items(subscription=subscription),
        discounts=discounts_for_period(subscription=subscription),
        recurring=new_period is not None,
        billing_reason=billing_reason,
    )


@transaction.atomic(savepoint=False)
def subscription_cancel(
    *,
    subscription: Subscription,
    at: datetime | None = None,
    at_period_end: bool,
    prorate: bool = False,
    reason: str = "",
    acting_user: ActingUser = None,
) -> Subscription:
    """Cancel now, or at the end of the current period.

    Now: status canceled, ended at `at`; with `prorate`, the unused part of the period
    (what was paid for it, after a percent discount) is credited to the customer's
    balance; pending items and usage so far are invoiced in a final invoice.
    At period end: only `cancel_at_period_end` is set (undo with
    `subscription_cancel_undo`); the subscription stays active until the boundary.
    """
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    assert_transition(locked.status, Status.CANCELED)
    if at_period_end:
        if prorate:
            raise SubscriptionError(
                _("Nothing is prorated when a subscription ends with its period."), code="prorate_at_period_end"
            )
        locked.cancel_at_period_end = True
        locked.canceled_at = at
        locked.cancellation_reason = reason[:200]
        locked.save(update_fields=["cancel_at_period_end", "canceled_at", "cancellation_reason", "updated_at"])
        subscription_event(
            type="customer.subscription.updated",
            subscription=locked,
            at=at,
            acting_user=acting_user,
            cancel_at_period_end=True,
            cancel_at=locked.current_period_end,
            reason=reason,
        )
        return locked
    return _cancel_now(subscription=locked, at=at, prorate=prorate, reason=reason, acting_user=acting_user)


@transaction.atomic(savepoint=False)
def subscription_cancel_at(
    *,
    subscription: Subscription,
    cancel_at: datetime,
    reason: str = "",
    at: datetime | None = None,
    acting_user: ActingUser = None,
) -> Subscription:
    """Schedule the end of the subscription at `cancel_at` (later than now; Stripe's `cancel_at`).

    At the end of the current period it is the same as canceling at period end. Otherwise the
    billing run renews the periods before it as usual and ends the subscription at `cancel_at`,
    crediting the unused part of the period to the customer's balance (the period was paid in
    advance) and invoicing usage and pending items in a final invoice. Undo with
    `subscription_cancel_undo`.
    """
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    if cancel_at.utcoffset() is None:
        raise ValueError("cancel_at must be timezone-aware")
    cancel_at = instant(at=cancel_at, customer=locked.customer)
    assert_transition(locked.status, Status.CANCELED)
    if cancel_at <= at:
        raise SubscriptionError(
            _("A cancellation date must be in the future (after %(now)s).") % {"now": at.isoformat()},
            code="cancel_at_past",
        )
    if cancel_at == locked.current_period_end:
        return subscription_cancel(
            subscription=locked, at=at, at_period_end=True, reason=reason, acting_user=acting_user
        )
    locked.cancel_at = cancel_at
    locked.cancel_at_period_end = False
    locked.canceled_at = at
    locked.cancellation_reason = reason[:200]
    locked.save(update_fields=["cancel_at", "cancel_at_period_end", "canceled_at", "cancellation_reason", "updated_at"])
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        cancel_at=cancel_at,
        reason=reason,
    )
    return locked


@transaction.atomic(savepoint=False)
def subscription_cancel_scheduled(*, subscription: Subscription) -> Subscription | None:
    """End a subscription whose `cancel_at` has come within its current period (the billing run calls it)."""
    locked = subscription_lock(subscription)
    cancel_at = locked.cancel_at
    if (
        cancel_at is None
        or locked.status not in BILLABLE_STATUSES
        or not locked.current_period_start <= cancel_at < locked.current_period_end
    ):
        return None
    return _cancel_now(
        subscription=locked,
        at=cancel_at,
        prorate=True,
        reason=locked.cancellation_reason,
        acting_user=None,
    )


def _cancel_now(
    *, subscription: Subscription, at: datetime, prorate: bool, reason: str, acting_user: ActingUser
) -> Subscription:
    if at < subscription.current_period_start:
        raise SubscriptionError(_("A subscription cannot be canceled before its current period started."))
    items = subscription_items_snapshot(subscription=subscription)
    mrr_before = mrr_of(subscription=subscription, items=items)
    previous = _set_status(subscription, Status.CANCELED)
    credit = 0
    if prorate and previous != Status.TRIALING and at < subscription.current_period_end:
        discounts = [draft.discount for draft in current_period_discounts(subscription=subscription)]
        lines = cancellation_credit(
            items=item_charges(items, discounts=discounts),
            period_start=subscription.current_period_start,
            period_end=subscription.current_period_end,
            at=at,
        )
        # Never more than was billed for the unused time (billing/services/credits.py).
        lines = credits_apply_basis(subscription=subscription, lines=lines, at=at)
        credit = -sum(line.amount for line in lines)
        if credit > 0:
            balance_credit(
                customer=subscription.customer,
                currency=subscription.currency,
                amount=credit,
                description=_("Unused time after cancellation of subscription #%(pk)s") % {"pk": subscription.pk},
                at=at,
            )
    final = _owed_so_far_draft(
        subscription=subscription,
        items=(),
        usage_items=items,
        at=at,
        new_period=None,
        billing_reason="subscription_update",
    )
    # A final invoice only when something is owed: pending items, or usage.
    if any(line.amount or line.kind != "usage" for line in final.lines):
        invoice_issue(draft=final, customer=subscription.customer, at=at, acting_user=acting_user)
    subscription.canceled_at = subscription.canceled_at or at
    subscription.ended_at = at
    subscription.cancel_at_period_end = False
    subscription.cancellation_reason = reason[:200] or subscription.cancellation_reason
    subscription.save()
    subscription.scheduled_changes.filter(status=ScheduledChange.Status.PENDING).update(
        status=ScheduledChange.Status.CANCELED
    )
    change_record(
        subscription=subscription,
        kind=SubscriptionChange.Kind.CANCEL,
        at=at,
        items_before=items,
        items_after=items,
        mrr_before=mrr_before,
        mrr_after=0,
        acting_user=acting_user,
        proration_mode="credit" if prorate else "",
        proration_amount=-credit,
    )
    subscription_event(
        type="customer.subscription.deleted",
        subscription=subscription,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        reason=reason,
        credited=credit,
    )
    return subscription


@transaction.atomic(savepoint=False)
def subscription_cancel_undo(*, subscription: Subscription, acting_user: ActingUser = None) -> Subscription:
    """Keep a subscription that was set to cancel at period end (or at a date)."""
    locked = subscription_lock(subscription)
    at = instant(at=None, customer=locked.customer)
    if locked.status == Status.CANCELED or not (locked.cancel_at_period_end or locked.cancel_at):
        raise SubscriptionError(_("This subscription is not set to cancel at period end."), code="not_canceling")
    locked.cancel_at_period_end = False
    locked.cancel_at = None
    locked.canceled_at = None
    locked.cancellation_reason = ""
    locked.save(update_fields=["cancel_at_period_end", "cancel_at", "canceled_at", "cancellation_reason", "updated_at"])
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        cancel_at_period_end=False,
    )
    return locked


@transaction.atomic(savepoint=False)
def subscription_pause(
    *,
    subscription: Subscription,
    at: datetime | None = None,
    resumes_at: datetime | None = None,
    acting_user: ActingUser = None,
) -> Subscription:
    """Stop billing from `at` (no credit for the rest of the period); resume by hand or at `resumes_at`."""
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    if resumes_at is not None and resumes_at <= at:
        raise SubscriptionError(_("A paused subscription resumes after it is paused."), code="resumes_at")
    items = subscription_items_snapshot(subscription=locked)
    mrr_before = mrr_of(subscription=locked, items=items)
    # Items billed in arrears owe the time used up to the pause (next invoice: the resume's).
    InvoiceItem.objects.bulk_create(arrears_used_items(subscription=locked, before=items, after=(), at=at))
    previous = _set_status(locked, Status.PAUSED)
    locked.paused_at = at
    locked.resumes_at = resumes_at
    locked.save(update_fields=["status", "paused_at", "resumes_at", "updated_at"])
    change_record(
        subscription=locked,
        kind=SubscriptionChange.Kind.PAUSE,
        at=at,
        items_before=items,
        items_after=items,
        mrr_before=mrr_before,
        mrr_after=0,
        acting_user=acting_user,
    )
    subscription_event(
        type="customer.subscription.paused",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        resumes_at=resumes_at,
    )
    return locked


def _start_new_period(
    *,
    subscription: Subscription,
    items: Sequence[ItemSnapshot],
    usage_items: Sequence[ItemSnapshot],
    at: datetime,
    acting_user: ActingUser,
) -> Subscription:
    """Re-anchor the subscription at `at` and bill the new period in advance with what is owed so far."""
    period = resume_period(subscription=subscription, tz=subscription.customer.timezone, at=at)
    if renewal_exists(subscription_id=subscription.pk, period_start=period.start):
        # Paused and resumed again at the same instant (a test clock stands still): that
        # period is already billed once, and billing it twice is what the database forbids.
        raise SubscriptionConflict(
            _("This subscription already started a period at this instant; it can start a new one later."),
            code="period_already_billed",
        )
    draft = _owed_so_far_draft(
        subscription=subscription_copy(subscription, billing_cycle_anchor=at),
        items=items,
        usage_items=usage_items,
        at=at,
        new_period=period,
        billing_reason="subscription_cycle",
    )
    subscription.billing_cycle_anchor = at
    subscription.current_period_start = period.start
    subscription.current_period_end = period.end
    _advance_discount_counter(subscription)
    subscription.save()
    invoice_issue(draft=draft, customer=subscription.customer, at=at, acting_user=acting_user)
    return subscription


@transaction.atomic(savepoint=False)
def subscription_resume(
    *, subscription: Subscription, at: datetime | None = None, acting_user: ActingUser = None
) -> Subscription:
    """Resume a paused subscription at `at`: a new period starts and is invoiced at once."""
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    if locked.status != Status.PAUSED:
        raise SubscriptionError(_("Only a paused subscription can resume."), code="not_paused")
    if locked.paused_at is not None and at < locked.paused_at:
        raise SubscriptionError(_("A subscription resumes after it was paused."), code="resume_before_pause")
    previous = _set_status(locked, Status.ACTIVE)
    # The paused time is not billed in arrears (the pause billed the time before it).
    items = arrears_restart_at(subscription=locked, items=subscription_items_snapshot(subscription=locked), at=at)
    locked.paused_at = None
    locked.resumes_at = None
    _start_new_period(subscription=locked, items=items, usage_items=items, at=at, acting_user=acting_user)
    mrr_after = mrr_of(subscription=locked, items=items)
    change_record(
        subscription=locked,
        kind=SubscriptionChange.Kind.RESUME,
        at=at,
        items_before=items,
        items_after=items,
        mrr_before=0,
        mrr_after=mrr_after,
        acting_user=acting_user,
    )
    subscription_event(
        type="customer.subscription.resumed",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        current_period_start=locked.current_period_start,
        current_period_end=locked.current_period_end,
    )
    return locked


@transaction.atomic(savepoint=False)
def subscription_end_trial(
    *,
    subscription: Subscription,
    at: datetime | None = None,
    has_payment_method: bool = True,
    acting_user: ActingUser = None,
) -> Subscription:
    """End the trial at `at`.

    At or after `trial_end` (the billing run): the status changes and the run's renewal
    at `current_period_end` (= trial end) issues the first paid invoice. Before it (the
    customer upgrades early): a new period starts at `at` and is invoiced at once.
    A customer without a payment method on automatic collection gets the subscription's
    `trial_end_behavior`: invoice anyway (active), pause, or cancel.
    """
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    if locked.status != Status.TRIALING:
        raise SubscriptionError(_("This subscription is not in a trial."), code="not_trialing")
    trial_end = locked.trial_end or locked.current_period_end
    ends_early = at < trial_end
    behavior: str = Subscription.TrialEndBehavior.CREATE_INVOICE
    if not has_payment_method and locked.collection_method == Subscription.CollectionMethod.CHARGE_AUTOMATICALLY:
        behavior = locked.trial_end_behavior
    if behavior == Subscription.TrialEndBehavior.CANCEL:
        return _cancel_now(
            subscription=locked,
            at=min(at, trial_end),
            prorate=False,
            reason="trial ended without a payment method",
            acting_user=acting_user,
        )
    if behavior == Subscription.TrialEndBehavior.PAUSE:
        previous = _set_status(locked, Status.PAUSED)
        locked.paused_at = min(at, trial_end)
        locked.save(update_fields=["status", "paused_at", "updated_at"])
        subscription_event(
            type="customer.subscription.paused",
            subscription=locked,
            at=at,
            acting_user=acting_user,
            previous_status=previous,
            reason="trial ended without a payment method",
        )
        return locked
    previous = _set_status(locked, Status.ACTIVE)
    if ends_early:
        locked.trial_end = at
        items = subscription_items_snapshot(subscription=locked)
        _start_new_period(subscription=locked, items=items, usage_items=(), at=at, acting_user=acting_user)
    else:
        locked.save(update_fields=["status", "updated_at"])
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        trial_end=locked.trial_end,
    )
    return locked


@transaction.atomic(savepoint=False)
def subscription_prepare_renewal(
    *, subscription: Subscription, at: datetime, has_payment_method: bool = True
) -> Subscription | None:
    """What happens at a period boundary before the billing run bills the next period.

    For a due subscription (current_period_end <= at): cancel it if it was set to
    cancel at period end (final invoice for usage and pending items), else apply a
    scheduled change effective by the boundary, and end a trial that ends there.
    Returns the (locked, fresh) subscription when the run should now bill its next
    period, or None when it should not (canceled, paused, not due).
    """
    locked = subscription_lock(subscription)
    boundary = locked.current_period_end
    if boundary > at or locked.status not in BILLABLE_STATUSES:
        return None
    if locked.cancel_at_period_end:
        _cancel_now(
            subscription=locked, at=boundary, prorate=False, reason=locked.cancellation_reason, acting_user=None
        )
        return None
    if locked.cancel_at is not None and locked.cancel_at <= boundary:
        # Its date came within this period (the run was late): end it then, crediting what was not used.
        _cancel_now(
            subscription=locked,
            at=max(locked.cancel_at, locked.current_period_start),
            prorate=locked.cancel_at < boundary,
            reason=locked.cancellation_reason,
            acting_user=None,
        )
        return None
    scheduled_changes_apply_due(subscription=locked, at=boundary)
    locked = subscription_lock(locked)
    if locked.status == Status.TRIALING and (locked.trial_end is None or locked.trial_end <= boundary):
        locked = subscription_end_trial(subscription=locked, at=boundary, has_payment_method=has_payment_method)
    return locked if locked.status in BILLABLE_STATUSES else None
