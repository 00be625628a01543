"""Lifecycle events integrators rely on (Stripe's names), recorded in the event log and so
delivered as webhooks:

* `customer.subscription.trial_will_end`, TARIF_TRIAL_WILL_END_DAYS (3) before a trial ends;
  a trial shorter than that gets it at once (its start calls `subscription_notices_check`).
  Once per trial end: extending or shortening the trial re-arms it.
* `invoice.upcoming`, TARIF_INVOICE_UPCOMING_DAYS (7) before a renewal, with the upcoming
  invoice's totals; once per subscription-period. Not sent when nothing renews (set to
  cancel at period end, or at a date within the period), nor for periods no longer than the
  notice (a weekly plan with the 7-day default, as Stripe does).

A beat sweeper runs both for customers on the wall clock; a test clock's advance runs them
for its customers at the clock's time (billing/services/test_clocks.py), so they respect the
billing clock. Each notice inserts a `SubscriptionNotice` row (unique per subscription, kind
and the instant it is about) with its event, under the subscription's lock: a rerun, a
retried task or two sweepers at once send it once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from billing.models import Subscription, SubscriptionNotice, TestClock
from billing.services.subscriptions.common import subscription_event, subscription_lock
from billing.services.upcoming import NoUpcomingInvoice, upcoming_invoice
from config import clock

Status = Subscription.Status
Kind = SubscriptionNotice.Kind


def _trial_notice() -> timedelta:
    return timedelta(days=settings.TARIF_TRIAL_WILL_END_DAYS)


def _upcoming_notice() -> timedelta:
    return timedelta(days=settings.TARIF_INVOICE_UPCOMING_DAYS)


def _claim(*, subscription: Subscription, kind: str, about: datetime, at: datetime) -> bool:
    """Insert the notice's marker; False when it was already sent. Caller holds the lock."""
    if SubscriptionNotice.objects.filter(subscription=subscription, kind=kind, about=about).exists():
        return False
    SubscriptionNotice.objects.create(subscription=subscription, kind=kind, about=about, sent_at=at)
    return True


def _trial_will_end(*, subscription: Subscription, as_of: datetime) -> bool:
    trial_end = subscription.trial_end
    if subscription.status != Status.TRIALING or trial_end is None or trial_end - _trial_notice() > as_of:
        return False
    # Stamped when it is sent (a test clock that jumps past the notice sends it at its new time).
    occurred = as_of
    if not _claim(subscription=subscription, kind=Kind.TRIAL_WILL_END, about=trial_end, at=occurred):
        return False
    subscription_event(
        type="customer.subscription.trial_will_end",
        subscription=subscription,
        at=occurred,
        trial_start=subscription.trial_start,
        trial_end=trial_end,
        days_before=settings.TARIF_TRIAL_WILL_END_DAYS,
    )
    return True


def trial_will_end_send(*, subscription: Subscription, at: datetime) -> bool:
    """At a trial's start or move: send `trial_will_end` now if the trial ends within the notice.

    The caller holds the subscription's lock (or has just created the row).
    """
    return _trial_will_end(subscription=subscription, as_of=at)


def _renews(subscription: Subscription) -> bool:
    if subscription.status not in (Status.ACTIVE, Status.PAST_DUE, Status.TRIALING):
        return False
    if subscription.cancel_at_period_end:
        return False
    return subscription.cancel_at is None or subscription.cancel_at > subscription.current_period_end


def _invoice_upcoming(*, subscription: Subscription, as_of: datetime) -> bool:
    end = subscription.current_period_end
    notice = _upcoming_notice()
    if not _renews(subscription) or end - notice > as_of or end - subscription.current_period_start <= notice:
        return False
    # The preview as it stands just before the renewal (a test clock may have jumped past it).
    at = min(as_of, end - timedelta(seconds=1))
    try:
        preview = upcoming_invoice(subscription=subscription, at=at)
    except NoUpcomingInvoice:
        return False
    if not _claim(subscription=subscription, kind=Kind.INVOICE_UPCOMING, about=end, at=at):
        return False
    subscription_event(
        type="invoice.upcoming",
        subscription=subscription,
        at=at,
        renews_at=end,
        currency=preview.currency,
        subtotal=preview.totals.subtotal,
        discount_total=preview.totals.discount_total,
        tax_total=preview.totals.tax_total,
        total=preview.total,
        balance_applied=preview.balance_applied,
        amount_due=preview.amount_due,
        lines=len(preview.lines),
    )
    return True


@transaction.atomic(savepoint=False)
def subscription_notices_check(*, subscription: Subscription, at: datetime | None = None) -> int:
    """Send the notices due for one subscription at `at` (its clock's now by default)."""
    locked = subscription_lock(subscription)
    as_of = at or clock.now(customer=locked.customer)
    return int(_trial_will_end(subscription=locked, as_of=as_of)) + int(
        _invoice_upcoming(subscription=locked, as_of=as_of)
    )


def _noticed(kind: str, about_field: str) -> Exists:
    return Exists(
        SubscriptionNotice.objects.filter(subscription=OuterRef("pk"), kind=kind, about=OuterRef(about_field))
    )


def subscription_notices_sweep(*, as_of: datetime | None = None, test_clock: TestClock | None = None) -> int:
    """Send every notice due at `as_of`: real customers (wall clock), or one test clock's."""
    scope: dict[str, object]
    if test_clock is not None:
        as_of = as_of or test_clock.frozen_time
        scope = {"customer__test_clock": test_clock}
    else:
        as_of = as_of or clock.system_now()
        scope = {"customer__test_clock__isnull": True}
    trials = Subscription.objects.filter(
        status=Status.TRIALING, trial_end__lte=as_of + _trial_notice(), **scope
    ).filter(~_noticed(Kind.TRIAL_WILL_END, "trial_end"))
    renewals = Subscription.objects.filter(
        status__in=[Status.ACTIVE, Status.PAST_DUE, Status.TRIALING],
        cancel_at_period_end=False,
        current_period_end__lte=as_of + _upcoming_notice(),
        **scope,
    ).filter(~_noticed(Kind.INVOICE_UPCOMING, "current_period_end"))
    sent = 0
    for pk in sorted({*trials.values_list("pk", flat=True), *renewals.values_list("pk", flat=True)}):
        with transaction.atomic():
            sent += subscription_notices_check(subscription=Subscription(pk=pk), at=as_of)
    return sent
