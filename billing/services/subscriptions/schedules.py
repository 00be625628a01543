"""Scheduled changes: a plan or quantity change recorded now and applied at a period boundary."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.utils.translation import gettext as _

from billing.models import (
    InvoiceItem,
    ScheduledChange,
    Subscription,
    SubscriptionChange,
)
from billing.selectors import (
    cycle_spec,
    subscription_items_snapshot,
)
from billing.services.modes import modes_check
from billing.services.subscriptions.common import (
    ItemSpec,
    SubscriptionError,
    arrears_carry,
    arrears_used_items,
    change_record,
    changeable_check,
    instant,
    items_apply,
    items_changed_event_data,
    items_validate,
    mrr_of,
    removed_meter_usage_items,
    subscription_event,
    subscription_lock,
)
from billing.services.upcoming import scheduled_change_items
from config.events.log import event_record
from config.types import ActingUser


@transaction.atomic(savepoint=False)
def subscription_schedule_change(
    *,
    subscription: Subscription,
    items: Sequence[ItemSpec],
    effective_at: datetime | None = None,
    acting_user: ActingUser = None,
) -> ScheduledChange:
    """Change the items at `effective_at` (default: the end of the current period), without proration.

    A subscription has at most one pending change: scheduling another replaces it.
    A change of billing cycle can only be scheduled at the end of the current period,
    where the new cycle's first period starts (anchored there).
    """
    locked = subscription_lock(subscription)
    now = instant(at=None, customer=locked.customer)
    changeable_check(locked)
    modes_check(livemode=locked.customer.livemode, objects=[spec.price for spec in items])
    before = subscription_items_snapshot(subscription=locked)
    validated = items_validate(
        items=items, allow_one_time=False, kept_price_ids=frozenset(item.price.pk for item in before)
    )
    if validated.currency != locked.currency:
        raise SubscriptionError(
            _("The new prices are in %(new)s; this subscription is in %(currency)s.")
            % {"new": validated.currency, "currency": locked.currency},
            code="currency_change",
        )
    effective_at = instant(at=effective_at or locked.current_period_end, customer=locked.customer)
    if effective_at < now:
        raise SubscriptionError(_("A scheduled change takes effect in the future."), code="effective_in_past")
    if validated.cycle != cycle_spec(locked.cycle) and effective_at != locked.current_period_end:
        raise SubscriptionError(
            _("A change of billing cycle is scheduled for the end of the current period."), code="cycle_mid_period"
        )
    replaced = list(locked.scheduled_changes.filter(status=ScheduledChange.Status.PENDING))
    for old in replaced:
        old.status = ScheduledChange.Status.CANCELED
        old.save(update_fields=["status"])
        _schedule_event("subscription_schedule.canceled", old, locked, now, acting_user)
    change = ScheduledChange.objects.create(
        subscription=locked,
        effective_at=effective_at,
        items=[item.as_json() for item in validated.recurring],
    )
    _schedule_event("subscription_schedule.created", change, locked, now, acting_user)
    return change


def _schedule_event(
    type: str, change: ScheduledChange, subscription: Subscription, at: datetime, acting_user: ActingUser
) -> None:
    event_record(
        type=type,
        object_type="scheduled_change",
        object_id=change.pk,
        customer_id=subscription.customer_id,
        occurred_at=at,
        data={
            "subscription": subscription.pk,
            "effective_at": change.effective_at,
            "items": change.items,
            "status": change.status,
        },
        acting_user=acting_user,
    )


@transaction.atomic(savepoint=False)
def scheduled_change_cancel(*, scheduled_change: ScheduledChange, acting_user: ActingUser = None) -> ScheduledChange:
    locked = subscription_lock(scheduled_change.subscription)
    change = ScheduledChange.objects.get(pk=scheduled_change.pk)
    if change.status != ScheduledChange.Status.PENDING:
        raise SubscriptionError(_("This scheduled change is no longer pending."), code="not_pending")
    change.status = ScheduledChange.Status.CANCELED
    change.save(update_fields=["status"])
    _schedule_event(
        "subscription_schedule.canceled", change, locked, instant(at=None, customer=locked.customer), acting_user
    )
    return change


@transaction.atomic(savepoint=False)
def scheduled_changes_apply_due(*, subscription: Subscription, at: datetime) -> ScheduledChange | None:
    """Apply the pending change effective by `at`, without proration (billing run).

    The items change at the change's `effective_at`; usage so far of a metered price
    it removes becomes a pending item. A new billing cycle is anchored at
    `effective_at`. The given `subscription` instance is updated too (cycle, anchor),
    so a caller holding it computes the next period with the new cycle.
    """
    locked = subscription_lock(subscription)
    change = locked.scheduled_changes.filter(status=ScheduledChange.Status.PENDING, effective_at__lte=at).first()
    if change is None:
        return None

    effective_at = change.effective_at
    before = subscription_items_snapshot(subscription=locked)
    after = scheduled_change_items(change)
    mrr_before = mrr_of(subscription=locked, items=before)
    after = arrears_carry(before=before, after=after, at=effective_at)
    usage_items = removed_meter_usage_items(subscription=locked, before=before, after=after, at=effective_at)
    usage_items += arrears_used_items(subscription=locked, before=before, after=after, at=effective_at)
    InvoiceItem.objects.bulk_create(usage_items)
    items_apply(subscription=locked, before=before, after=after)
    new_cycle = cycle_spec(after[0].price.cycle)
    if new_cycle != cycle_spec(locked.cycle):
        for instance in (locked, subscription):
            instance.cycle = new_cycle.to_dict()
            instance.billing_cycle_anchor = effective_at
        locked.save(update_fields=["cycle", "billing_cycle_anchor", "updated_at"])
    change.status = ScheduledChange.Status.APPLIED
    change.save(update_fields=["status"])
    change_record(
        subscription=locked,
        kind=SubscriptionChange.Kind.SCHEDULED,
        at=effective_at,
        items_before=before,
        items_after=after,
        mrr_before=mrr_before,
        mrr_after=mrr_of(subscription=locked, items=after),
        acting_user=None,
        proration_mode="none",
    )
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=effective_at,
        scheduled_change=change.pk,
        **items_changed_event_data(before, after),
    )
    _schedule_event("subscription_schedule.completed", change, locked, effective_at, None)
    return change
