"""The status machine, through the services, over the whole transition table."""

from __future__ import annotations

import itertools

import pytest
from django.db import transaction

from billing.models import Subscription, SubscriptionItem
from billing.services.subscriptions import (
    SubscriptionError,
    subscription_cancel,
    subscription_pause,
    subscription_resume,
    subscription_transition,
)
from billing.states import ALLOWED_TRANSITIONS, InvalidTransition
from config.events.models import DomainEvent
from tests.billing.services.conftest import MONTHLY, utc

pytestmark = pytest.mark.django_db

Status = Subscription.Status
PAIRS = list(itertools.product(Status.values, Status.values))


@pytest.fixture
def subscription_in(make_customer, make_price):
    def make(status: str) -> Subscription:
        subscription = Subscription.objects.create(
            customer=make_customer(),
            status=status,
            currency="EUR",
            cycle=MONTHLY,
            billing_cycle_anchor=utc(2024, 4, 1),
            current_period_start=utc(2024, 4, 1),
            current_period_end=utc(2024, 5, 1),
            paused_at=utc(2024, 4, 5) if status == Status.PAUSED else None,
        )
        SubscriptionItem.objects.create(subscription=subscription, price=make_price(2900))
        return subscription

    return make


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_every_transition_of_the_table(current, target, subscription_in):
    subscription = subscription_in(current)
    allowed = target in ALLOWED_TRANSITIONS[current]

    if allowed:
        changed = subscription_transition(subscription=subscription, to_status=target, at=utc(2024, 4, 10))
        assert changed.status == target
        assert DomainEvent.objects.filter(object_id=str(subscription.pk), data__previous_status=current).exists()
    else:
        with pytest.raises(InvalidTransition), transaction.atomic():
            subscription_transition(subscription=subscription, to_status=target, at=utc(2024, 4, 10))
        subscription.refresh_from_db()
        assert subscription.status == current


@pytest.mark.parametrize("current", Status.values)
def test_cancel_follows_the_table(current, subscription_in):
    subscription = subscription_in(current)

    if Status.CANCELED in ALLOWED_TRANSITIONS[current]:
        assert (
            subscription_cancel(subscription=subscription, at=utc(2024, 4, 10), at_period_end=False).status
            == Status.CANCELED
        )
    else:
        with pytest.raises(InvalidTransition), transaction.atomic():
            subscription_cancel(subscription=subscription, at=utc(2024, 4, 10), at_period_end=False)


@pytest.mark.parametrize("current", Status.values)
def test_pause_follows_the_table(current, subscription_in):
    subscription = subscription_in(current)

    if Status.PAUSED in ALLOWED_TRANSITIONS[current]:
        assert subscription_pause(subscription=subscription, at=utc(2024, 4, 10)).status == Status.PAUSED
    else:
        with pytest.raises(InvalidTransition), transaction.atomic():
            subscription_pause(subscription=subscription, at=utc(2024, 4, 10))


@pytest.mark.parametrize("current", Status.values)
def test_resume_follows_the_table(current, subscription_in):
    subscription = subscription_in(current)

    if current == Status.PAUSED:
        assert subscription_resume(subscription=subscription, at=utc(2024, 4, 10)).status == Status.ACTIVE
    else:
        with pytest.raises(SubscriptionError) as error, transaction.atomic():
            subscription_resume(subscription=subscription, at=utc(2024, 4, 10))
        assert error.value.code == "not_paused"
