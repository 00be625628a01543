"""The daily scan for time-based reminders: renewals, expiring cards, trials ending.

Runs for real customers at the wall clock, or for one test clock's customers at that
clock's time (the outbox consumer calls it when a test clock advances). Dedupe keys name
the period, the card or the trial, so each reminder goes once however often it runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from billing.models import PaymentMethod, Subscription, TestClock
from billing.services.upcoming import NoUpcomingInvoice, upcoming_invoice
from customers.models import NotificationKind
from customers.notifications.services import notification_queue
from customers.portal.selectors import is_annual

Kind = NotificationKind


def _customers_filter(test_clock: TestClock | None, prefix: str = "customer__") -> dict[str, Any]:
    if test_clock is None:
        return {f"{prefix}test_clock__isnull": True}
    return {f"{prefix}test_clock": test_clock}


def _upcoming_amount(subscription: Subscription, at: datetime) -> tuple[int, str]:
    try:
        preview = upcoming_invoice(subscription=subscription, at=at)
    except NoUpcomingInvoice:
        return 0, subscription.currency
    return preview.amount_due, subscription.currency


def _renewals(as_of: datetime, test_clock: TestClock | None) -> int:
    horizon = as_of + timedelta(days=max(settings.TARIF_NOTIFY_RENEWAL_DAYS, settings.TARIF_NOTIFY_RENEWAL_DAYS_ANNUAL))
    queued = 0
    candidates = Subscription.objects.filter(
        status__in=[Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE],
        cancel_at_period_end=False,
        current_period_end__gt=as_of,
        current_period_end__lte=horizon,
        **_customers_filter(test_clock),
    ).select_related("customer")
    for subscription in candidates:
        days = (
            settings.TARIF_NOTIFY_RENEWAL_DAYS_ANNUAL
            if is_annual(subscription.cycle)
            else settings.TARIF_NOTIFY_RENEWAL_DAYS
        )
        if subscription.current_period_end - as_of > timedelta(days=days):
            continue
        amount, currency = _upcoming_amount(subscription, as_of)
        renews_at = subscription.current_period_end
        queued += bool(
            notification_queue(
                customer=subscription.customer,
                kind=Kind.UPCOMING_RENEWAL,
                dedupe_key=f"subscription:{subscription.pk}:renewal:{renews_at.isoformat()}",
                data={
                    "subscription": subscription.pk,
                    "renews_at": renews_at.isoformat(),
                    "amount": amount,
                    "currency": currency,
                },
            )
        )
    return queued


def _trials(as_of: datetime, test_clock: TestClock | None) -> int:
    queued = 0
    candidates = Subscription.objects.filter(
        status=Subscription.Status.TRIALING,
        trial_end__gt=as_of,
        trial_end__lte=as_of + timedelta(days=settings.TARIF_NOTIFY_TRIAL_DAYS),
        **_customers_filter(test_clock),
    ).select_related("customer")
    for subscription in candidates:
        amount, currency = _upcoming_amount(subscription, as_of)
        queued += bool(
            notification_queue(
                customer=subscription.customer,
                kind=Kind.TRIAL_ENDING,
                dedupe_key=f"subscription:{subscription.pk}:trial:{subscription.trial_end.isoformat()}",
                data={
                    "subscription": subscription.pk,
                    "trial_end": subscription.trial_end.isoformat(),
                    "amount": amount,
                    "currency": currency,
                },
            )
        )
    return queued


def _expiry_month_start(method: PaymentMethod) -> datetime:
    return datetime(method.exp_year, method.exp_month, 1, tzinfo=UTC)


def _cards(as_of: datetime, test_clock: TestClock | None) -> int:
    """Cards whose expiry month starts within TARIF_NOTIFY_CARD_EXPIRY_DAYS (or has started)."""
    notice = timedelta(days=settings.TARIF_NOTIFY_CARD_EXPIRY_DAYS)
    horizon = as_of + notice
    queued = 0
    candidates = PaymentMethod.objects.filter(
        active=True,
        kind__in=[PaymentMethod.Kind.CARD, PaymentMethod.Kind.WALLET],
        exp_year__isnull=False,
        exp_month__isnull=False,
        exp_year__lte=horizon.year,
        **_customers_filter(test_clock),
    ).select_related("customer")
    for method in candidates:
        month_start = _expiry_month_start(method)
        month_end = (month_start + timedelta(days=32)).replace(day=1)
        if not (month_start - notice <= as_of < month_end):
            continue
        queued += bool(
            notification_queue(
                customer=method.customer,
                kind=Kind.CARD_EXPIRING,
                dedupe_key=f"payment_method:{method.pk}",
                data={"payment_method": method.pk},
            )
        )
    return queued


def notifications_scan(*, as_of: datetime | None = None, test_clock: TestClock | None = None) -> int:
    """Queue the reminders due at `as_of`; returns how many were queued (new ones only)."""
    if as_of is None:
        as_of = test_clock.frozen_time if test_clock is not None else timezone.now()
    return _renewals(as_of, test_clock) + _trials(as_of, test_clock) + _cards(as_of, test_clock)
