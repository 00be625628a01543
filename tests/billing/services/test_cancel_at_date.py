"""Cancel at a chosen date (Stripe's cancel_at): refused in the past, ended by the billing run at
the date with the unused time credited, renewed before it, undone like a cancel at period end."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from billing.errors import SubscriptionError
from billing.models import Subscription
from billing.services.billing_run import billing_run_start
from billing.services.subscriptions import (
    ItemSpec,
    subscription_cancel_at,
    subscription_cancel_undo,
    subscription_create,
)
from billing.services.upcoming import upcoming_invoice
from invoices.models import BalanceTransaction, Invoice
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db

T0 = utc(2026, 1, 1, 9)


@pytest.fixture
def subscription(make_customer, make_price):
    return subscription_create(customer=make_customer(), items=[ItemSpec(make_price(3100))], at=T0)


def test_a_date_in_the_past_or_now_is_refused(subscription):
    for cancel_at in (T0 - timedelta(days=1), T0 + timedelta(days=2)):
        with pytest.raises(SubscriptionError, match="must be in the future"), transaction.atomic():
            subscription_cancel_at(subscription=subscription, cancel_at=cancel_at, at=T0 + timedelta(days=2))

    subscription.refresh_from_db()
    assert subscription.cancel_at is None


def test_the_run_ends_it_at_the_date_and_credits_the_unused_time(subscription):
    cancel_at = utc(2026, 1, 21, 9)  # 20 of the period's 31 days used
    subscription_cancel_at(subscription=subscription, cancel_at=cancel_at, reason="Moving", at=T0 + timedelta(days=1))
    assert upcoming_invoice(subscription=subscription, at=T0 + timedelta(days=1)).lines == ()  # no renewal

    billing_run_start(as_of=cancel_at + timedelta(hours=1))

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED and subscription.ended_at == cancel_at
    credit = BalanceTransaction.objects.get(customer=subscription.customer, kind="proration_credit")
    assert credit.amount == 1100  # the 11 unused days of 31 at 31.00 € (before tax, as the cancel-now credit)
    assert not Invoice.objects.filter(subscription=subscription, billing_reason="subscription_cycle").exists()


def test_a_date_after_the_period_renews_first_then_ends(subscription):
    cancel_at = utc(2026, 2, 11, 9)

    subscription_cancel_at(subscription=subscription, cancel_at=cancel_at, at=T0 + timedelta(days=1))
    billing_run_start(as_of=utc(2026, 2, 1, 10))
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    assert Invoice.objects.filter(subscription=subscription, billing_reason="subscription_cycle").count() == 1

    billing_run_start(as_of=cancel_at + timedelta(minutes=5))
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED and subscription.ended_at == cancel_at


def test_the_end_of_the_period_is_a_cancel_at_period_end_and_undo_clears_a_date(subscription):
    subscription_cancel_at(subscription=subscription, cancel_at=subscription.current_period_end, at=T0)
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end and subscription.cancel_at is None
    subscription_cancel_undo(subscription=subscription)

    subscription_cancel_at(subscription=subscription, cancel_at=utc(2026, 1, 20), at=T0 + timedelta(days=1))
    subscription_cancel_undo(subscription=subscription)

    subscription.refresh_from_db()
    assert subscription.cancel_at is None and not subscription.cancel_at_period_end
    billing_run_start(as_of=utc(2026, 1, 25))
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
