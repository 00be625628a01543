"""subscription_update raced by two threads on PostgreSQL (the pattern of test_races.py)."""

from __future__ import annotations

import pytest

from billing.errors import SubscriptionConflict
from billing.models import PendingUpdate, SubscriptionItem
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.subscriptions import update as update_module
from billing.services.subscriptions.update import ItemUpdate, SubscriptionUpdate, subscription_update
from tests.billing.services.conftest import utc
from tests.billing.services.test_races import errors_of, race, slowed

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_pending_updates_at_once_one_waits_and_is_refused(postgres_only, make_customer, make_price, monkeypatch):
    # Without the lock both would see "no pending update" and the second would hit the
    # one-pending-per-subscription constraint (a 500); with it the second sees the first's.
    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(1000), 1)], at=utc(2024, 4, 1)
    )
    item = SubscriptionItem.objects.get(subscription=subscription)
    slowed(monkeypatch, update_module, "_new_items")

    def pending(quantity: int):
        return lambda: subscription_update(
            subscription=subscription,
            changes=SubscriptionUpdate(
                items=(ItemUpdate(id=item.pk, quantity=quantity),), payment_behavior="pending_if_incomplete"
            ),
            at=utc(2024, 4, 16),
        )

    results = race(pending(2), pending(3))

    assert len(errors_of(results, SubscriptionConflict)) == 1
    assert PendingUpdate.objects.filter(subscription=subscription, status="pending").count() == 1
    assert SubscriptionItem.objects.get(pk=item.pk).quantity == 1
