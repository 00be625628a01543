"""Every service that locks a row, raced by two threads on PostgreSQL.

Each test slows the service down right after it has read what it decides on (inside
its lock), so without the lock both threads would decide on the same stale state. With
it, the second thread waits for the first to commit and decides on fresh data.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import connection

from billing.models import Coupon, InvoiceItem, ScheduledChange, Subscription, SubscriptionChange
from billing.services import changes, coupons, invoice_items, subscriptions
from billing.services.changes import subscription_change
from billing.services.coupons import CouponError
from billing.services.invoice_items import invoice_item_create
from billing.services.subscriptions import (
    ItemSpec,
    SubscriptionError,
    scheduled_change_cancel,
    scheduled_changes_apply_due,
    schedules,
    subscription_cancel,
    subscription_cancel_undo,
    subscription_create,
    subscription_end_trial,
    subscription_pause,
    subscription_prepare_renewal,
    subscription_resume,
    subscription_schedule_change,
    subscription_transition,
)
from billing.states import InvalidTransition
from config.events.models import DomainEvent
from invoices.models import Invoice
from invoices.selectors import customer_balance
from tests.billing.services.conftest import utc

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PAUSE = 0.3  # seconds a thread holds its lock after reading


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same time, one thread each; return results or raised exceptions."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    return results


def slowed(monkeypatch, module: Any, name: str) -> None:
    """Make `module.name` sleep after it returns: the caller holds its locks meanwhile.

    For a package (billing.services.subscriptions), every loaded submodule that uses the name.
    """
    if hasattr(module, "__path__"):
        prefix = module.__name__ + "."
        for submodule in [m for n, m in sys.modules.items() if n.startswith(prefix)]:
            if hasattr(submodule, name):
                slowed(monkeypatch, submodule, name)
        return
    original = getattr(module, name)

    def slow(*args, **kwargs):
        result = original(*args, **kwargs)
        time.sleep(PAUSE)
        return result

    monkeypatch.setattr(module, name, slow)


def errors_of(results: list[Any], kind: type[Exception]) -> list[Exception]:
    return [result for result in results if isinstance(result, kind)]


@pytest.fixture
def seats(postgres_only, make_customer, make_price):
    """10 EUR per seat, 1 seat since 1 April 2024."""
    price = make_price(1000, nickname="Seat")
    subscription = subscription_create(customer=make_customer(), items=[ItemSpec(price, 1)], at=utc(2024, 4, 1))
    return subscription, price


@pytest.fixture
def frozen_clock():
    with time_machine.travel(utc(2024, 4, 10), tick=False):
        yield


def test_two_changes_serialize_and_prorate_from_each_other(seats, monkeypatch):
    subscription, price = seats
    slowed(monkeypatch, changes, "_plan")

    results = race(
        lambda: subscription_change(subscription=subscription, items=[ItemSpec(price, 3)], at=utc(2024, 4, 16)),
        lambda: subscription_change(subscription=subscription, items=[ItemSpec(price, 5)], at=utc(2024, 4, 16)),
    )

    assert all(isinstance(result, SubscriptionChange) for result in results)
    first, second = sorted(results, key=lambda change: change.pk)
    # The second change saw the first one's items, not the ones both threads started from.
    assert second.items_before == first.items_after
    final_quantity = second.items_after[0]["quantity"]
    assert subscription.items.get().quantity == final_quantity
    # Half of April left: credit 1 seat, then each step credits what the previous one charged.
    pending = InvoiceItem.objects.filter(subscription=subscription, proration=True)
    assert sum(pending.values_list("amount", flat=True)) == final_quantity * 500 - 500


def test_two_cancellations_cancel_once(seats, monkeypatch):
    subscription, _ = seats
    slowed(monkeypatch, subscriptions, "assert_transition")

    results = race(
        *[
            lambda: subscription_cancel(
                subscription=subscription, at=utc(2024, 4, 21), at_period_end=False, prorate=True
            )
            for _ in range(2)
        ]
    )

    assert len(errors_of(results, InvalidTransition)) == 1
    assert DomainEvent.objects.filter(type="customer.subscription.deleted").count() == 1
    assert customer_balance(customer_id=subscription.customer_id, currency="EUR") == 333  # credited once


def test_two_pauses_pause_once(seats, monkeypatch):
    subscription, _ = seats
    slowed(monkeypatch, subscriptions, "assert_transition")

    results = race(*[lambda: subscription_pause(subscription=subscription, at=utc(2024, 4, 10)) for _ in range(2)])

    assert len(errors_of(results, InvalidTransition)) == 1
    assert SubscriptionChange.objects.filter(subscription=subscription, kind="pause").count() == 1


def test_two_resumes_bill_one_new_period(seats, monkeypatch):
    subscription, _ = seats
    subscription_pause(subscription=subscription, at=utc(2024, 4, 10))
    slowed(monkeypatch, subscriptions, "assert_transition")

    results = race(*[lambda: subscription_resume(subscription=subscription, at=utc(2024, 6, 1)) for _ in range(2)])

    assert [error.code for error in errors_of(results, SubscriptionError)] == ["not_paused"]
    assert Invoice.objects.filter(subscription=subscription, billing_reason="subscription_cycle").count() == 1


def test_two_status_changes_apply_once(seats, monkeypatch):
    subscription, _ = seats
    slowed(monkeypatch, subscriptions, "assert_transition")

    results = race(
        *[lambda: subscription_transition(subscription=subscription, to_status="past_due") for _ in range(2)]
    )

    assert len(errors_of(results, InvalidTransition)) == 1


def test_two_trial_ends_end_it_once(postgres_only, make_customer, make_price, monkeypatch):
    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(2900))], at=utc(2024, 4, 1), trial_days=14
    )
    slowed(monkeypatch, subscriptions, "assert_transition")

    results = race(*[lambda: subscription_end_trial(subscription=subscription, at=utc(2024, 4, 5)) for _ in range(2)])

    assert [error.code for error in errors_of(results, SubscriptionError)] == ["not_trialing"]
    assert Invoice.objects.filter(subscription=subscription, billing_reason="subscription_cycle").count() == 1


def test_two_schedules_leave_one_pending_change(seats, make_price, monkeypatch, frozen_clock):
    subscription, _ = seats
    plans = [make_price(2900), make_price(4900)]
    slowed(monkeypatch, subscriptions, "changeable_check")

    results = race(
        *[
            lambda plan=plan: subscription_schedule_change(subscription=subscription, items=[ItemSpec(plan)])
            for plan in plans
        ]
    )

    assert all(isinstance(result, ScheduledChange) for result in results)
    assert ScheduledChange.objects.filter(subscription=subscription, status="pending").count() == 1


def test_a_due_change_is_applied_once(seats, make_price, monkeypatch, frozen_clock):
    subscription, _ = seats
    subscription_schedule_change(subscription=subscription, items=[ItemSpec(make_price(2900))])
    slowed(monkeypatch, schedules, "scheduled_change_items")

    results = race(
        *[lambda: scheduled_changes_apply_due(subscription=subscription, at=utc(2024, 5, 1)) for _ in range(2)]
    )

    assert sorted(result is None for result in results) == [False, True]
    assert SubscriptionChange.objects.filter(subscription=subscription, kind="scheduled").count() == 1


def test_a_scheduled_change_is_either_canceled_or_applied(seats, make_price, monkeypatch, frozen_clock):
    subscription, _ = seats
    change = subscription_schedule_change(subscription=subscription, items=[ItemSpec(make_price(2900))])
    slowed(monkeypatch, schedules, "scheduled_change_items")  # apply: after reading the pending change
    slowed(monkeypatch, subscriptions, "instant")  # cancel: after reading the change's status

    results = race(
        lambda: scheduled_changes_apply_due(subscription=subscription, at=utc(2024, 5, 1)),
        lambda: scheduled_change_cancel(scheduled_change=change),
    )

    change.refresh_from_db()
    applied = SubscriptionChange.objects.filter(subscription=subscription, kind="scheduled").exists()
    if change.status == ScheduledChange.Status.APPLIED:
        assert applied and [error.code for error in errors_of(results, SubscriptionError)] == ["not_pending"]
    else:
        assert change.status == ScheduledChange.Status.CANCELED
        assert not applied and results[0] is None
    assert subscription.items.get().price.unit_amount == (2900 if applied else 1000)


def test_two_renewal_preparations_cancel_at_period_end_once(seats, monkeypatch, frozen_clock):
    subscription, _ = seats
    subscription_cancel(subscription=subscription, at_period_end=True)
    slowed(monkeypatch, subscriptions, "assert_transition")

    results = race(
        *[lambda: subscription_prepare_renewal(subscription=subscription, at=utc(2024, 5, 1)) for _ in range(2)]
    )

    assert results == [None, None]
    assert DomainEvent.objects.filter(type="customer.subscription.deleted").count() == 1


def test_two_undos_undo_once(seats, monkeypatch, frozen_clock):
    subscription, _ = seats
    subscription_cancel(subscription=subscription, at_period_end=True)
    slowed(monkeypatch, subscriptions, "instant")

    results = race(*[lambda: subscription_cancel_undo(subscription=subscription) for _ in range(2)])

    assert [error.code for error in errors_of(results, SubscriptionError)] == ["not_canceling"]


def test_an_item_added_while_the_subscription_is_canceled_is_billed_or_refused(seats, monkeypatch):
    subscription, _ = seats
    slowed(monkeypatch, invoice_items, "instant")  # after the item service checked the subscription

    race(
        lambda: subscription_cancel(subscription=subscription, at=utc(2024, 4, 21), at_period_end=False),
        lambda: invoice_item_create(
            customer=subscription.customer,
            subscription=subscription,
            amount=700,
            description="Late extra",
            at=utc(2024, 4, 21),
        ),
    )

    # Never a pending item stranded on a canceled subscription.
    assert not InvoiceItem.objects.filter(subscription=subscription, invoice__isnull=True).exists()


def test_the_last_redemption_of_a_coupon_goes_to_one_subscription(
    postgres_only, make_customer, make_price, monkeypatch
):
    coupon = Coupon.objects.create(name="Launch", percent_off=Decimal(20), max_redemptions=1)
    price = make_price(2900)
    customers = [make_customer(), make_customer()]
    slowed(monkeypatch, coupons, "coupon_validate")

    results = race(
        *[
            lambda customer=customer: subscription_create(
                customer=customer, items=[ItemSpec(price)], at=utc(2024, 4, 1), coupon=coupon
            )
            for customer in customers
        ]
    )

    assert [error.code for error in errors_of(results, CouponError)] == ["max_redemptions"]
    coupon.refresh_from_db()
    assert coupon.times_redeemed == 1
    assert Subscription.objects.filter(coupon=coupon).count() == 1
