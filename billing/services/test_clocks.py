"""Test clocks: customers attached to a clock live at its frozen time (as in Stripe).

Advancing a clock moves that time forward and runs the billing for its customers,
period by period, as if the time had really passed.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from billing.cycles import CycleSpec, next_boundary
from billing.locks import test_clock_qs_for_update
from billing.models import BillingRun, Subscription, TestClock
from billing.services.billing_run import billing_run_start
from billing.services.dunning import dunning_run_due
from billing.services.lifecycle_notices import subscription_notices_sweep
from billing.services.pending_updates import pending_updates_expire
from billing.states import BILLABLE_STATUSES
from config.events.log import event_record
from config.types import ActingUser


def test_clock_create(*, name: str, frozen_time: datetime) -> TestClock:
    if frozen_time.tzinfo is None:
        raise ValidationError(_("The clock's time must include a time zone."))
    return TestClock.objects.create(name=name, frozen_time=frozen_time)


test_clock_create.__test__ = False  # type: ignore[attr-defined]


def test_clock_advance_limit(*, clock: TestClock, frozen_time: datetime) -> datetime | None:
    """The furthest one advance may go: two billing periods of the clock's shortest subscription.

    Stripe's rule ("up to two intervals of the shortest subscription"): the second renewal after
    `frozen_time` among the clock's billable subscriptions, whatever their cycle (weekly, fixed
    days, date lists). None when the clock has no billable subscription (no limit). An advance of
    a century would otherwise bill thousands of periods in one request.
    """
    latest: datetime | None = None
    subscriptions = (
        Subscription.objects.filter(customer__test_clock=clock, status__in=BILLABLE_STATUSES)
        .select_related("customer")
        .only("cycle", "billing_cycle_anchor", "customer__timezone")
    )
    for subscription in subscriptions:
        spec = CycleSpec.from_dict(subscription.cycle)
        timezone = subscription.customer.timezone
        first = next_boundary(spec, anchor=subscription.billing_cycle_anchor, tz=timezone, after=frozen_time)
        second = next_boundary(spec, anchor=subscription.billing_cycle_anchor, tz=timezone, after=first)
        latest = second if latest is None else min(latest, second)
    return latest


test_clock_advance_limit.__test__ = False  # type: ignore[attr-defined]


def test_clock_advance(*, clock: TestClock, to: datetime, acting_user: ActingUser = None) -> BillingRun:
    """Move `clock` to `to` and bill its customers up to that instant (two periods at most)."""
    if to.tzinfo is None:
        raise ValidationError(_("The new time must include a time zone."))
    with transaction.atomic():
        locked = test_clock_qs_for_update().get(pk=clock.pk)
        if to <= locked.frozen_time:
            raise ValidationError(
                _("A test clock only moves forward: %(to)s is not after %(now)s.")
                % {"to": to.isoformat(), "now": locked.frozen_time.isoformat()}
            )
        if locked.status == TestClock.Status.ADVANCING:
            raise ValidationError(_("This clock is already advancing; wait for it to finish."))
        limit = test_clock_advance_limit(clock=locked, frozen_time=locked.frozen_time)
        if limit is not None and to > limit:
            raise ValidationError(
                _(
                    "A test clock advances at most two billing periods of its shortest subscription at a "
                    "time: up to %(limit)s from %(now)s. Advance it in steps."
                )
                % {"limit": limit.isoformat(), "now": locked.frozen_time.isoformat()}
            )
        previous = locked.frozen_time
        locked.frozen_time = to
        locked.status = TestClock.Status.ADVANCING
        locked.save(update_fields=["frozen_time", "status"])
        event_record(
            type="test_clock.advancing",
            object_type="test_clock",
            object_id=locked.pk,
            customer_id=None,
            occurred_at=to,
            data={"from": previous, "to": to},
            acting_user=acting_user,
        )
    # Lifecycle notices and pending-update expiry at the clock's time, for the periods the
    # clock leaves (before the run renews them) and for the new ones (after).
    subscription_notices_sweep(as_of=to, test_clock=locked)
    pending_updates_expire(as_of=to, test_clock=locked)
    run = billing_run_start(as_of=to, test_clock=locked, acting_user=acting_user)
    subscription_notices_sweep(as_of=to, test_clock=locked)
    # Payment retries fall due as the simulated time passes, like renewals.
    dunning_run_due(test_clock=locked)
    TestClock.objects.filter(pk=locked.pk).update(status=TestClock.Status.READY)
    clock.refresh_from_db()
    return run


test_clock_advance.__test__ = False  # type: ignore[attr-defined]
