"""Cancel, pause, resume, trials, scheduled changes and what happens at a period boundary."""

from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine
from django.db import transaction

from billing.models import Coupon, InvoiceItem, ScheduledChange, Subscription, SubscriptionChange
from billing.selectors import due_subscriptions, subscriptions_to_resume
from billing.services.changes import subscription_change
from billing.services.subscriptions import (
    ItemSpec,
    SubscriptionError,
    scheduled_change_cancel,
    scheduled_changes_apply_due,
    subscription_cancel,
    subscription_cancel_undo,
    subscription_create,
    subscription_end_trial,
    subscription_pause,
    subscription_prepare_renewal,
    subscription_resume,
    subscription_schedule_change,
)
from billing.services.upcoming import NoUpcomingInvoice, upcoming_invoice
from billing.services.usage import UsageEventInput, usage_events_record
from billing.states import InvalidTransition
from config.events.models import DomainEvent
from invoices.models import Invoice
from invoices.selectors import customer_balance
from tests.billing.services.conftest import YEARLY, utc

pytestmark = pytest.mark.django_db

Status = Subscription.Status


@pytest.fixture(autouse=True)
def mid_april_2024():
    """Services without an `at` (scheduling a change, undoing a cancellation) read the clock."""
    with time_machine.travel(utc(2024, 4, 10, 12), tick=False):
        yield


@pytest.fixture
def monthly(make_customer, make_price):
    """A customer on Pro (9900 a month) since 1 April 2024."""
    customer = make_customer()
    price = make_price(9900, nickname="Pro")
    return subscription_create(customer=customer, items=[ItemSpec(price)], at=utc(2024, 4, 1), trial_days=0)


def record_usage(customer, meter, *values_at):
    usage_events_record(
        events=[
            UsageEventInput(
                customer_id=customer.pk, meter_key=meter.key, external_id=f"e{n}", value=value, timestamp=at
            )
            for n, (value, at) in enumerate(values_at)
        ]
    )


# -- cancel ------------------------------------------------------------------------


def test_cancel_at_period_end_keeps_the_subscription_active_until_the_end(monthly):
    subscription = subscription_cancel(subscription=monthly, at=utc(2024, 4, 10), at_period_end=True, reason="budget")

    assert subscription.status == Status.ACTIVE
    assert subscription.cancel_at_period_end
    assert list(due_subscriptions(as_of=utc(2024, 4, 30))) == []
    # The upcoming invoice bills no new period.
    assert upcoming_invoice(subscription=subscription, at=utc(2024, 4, 11)).total == 0

    renewable = subscription_prepare_renewal(subscription=subscription, at=utc(2024, 5, 1))

    subscription.refresh_from_db()
    assert renewable is None
    assert subscription.status == Status.CANCELED
    assert subscription.ended_at == utc(2024, 5, 1)
    assert subscription.cancellation_reason == "budget"


def test_cancel_at_period_end_can_be_undone(monthly):
    subscription_cancel(subscription=monthly, at=utc(2024, 4, 10), at_period_end=True)

    subscription = subscription_cancel_undo(subscription=monthly)

    assert not subscription.cancel_at_period_end
    assert subscription_prepare_renewal(subscription=subscription, at=utc(2024, 5, 1)) is not None


def test_cancel_immediately_without_credit(monthly):
    subscription = subscription_cancel(subscription=monthly, at=utc(2024, 4, 21), at_period_end=False)

    assert subscription.status == Status.CANCELED
    assert subscription.ended_at == utc(2024, 4, 21)
    assert customer_balance(customer_id=subscription.customer_id, currency="EUR") == 0
    assert DomainEvent.objects.filter(type="customer.subscription.deleted").count() == 1
    assert SubscriptionChange.objects.get(subscription=subscription, kind="cancel").mrr_after == 0


def test_cancel_immediately_invoices_pending_items_and_usage_so_far(make_customer, make_price, make_metered_price):
    customer = make_customer()
    metered = make_metered_price("2", nickname="Calls")
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(make_price(2900)), ItemSpec(metered)], at=utc(2024, 4, 1)
    )
    record_usage(customer, metered.meter, (Decimal(100), utc(2024, 4, 5)), (Decimal(50), utc(2024, 4, 25)))

    subscription_cancel(subscription=subscription, at=utc(2024, 4, 20), at_period_end=False)

    final = Invoice.objects.get(subscription=subscription, billing_reason="subscription_update")
    # Only the 100 calls before the cancellation, at 2 cents each.
    assert list(final.lines.values_list("kind", "quantity", "amount")) == [("usage", Decimal(100), 200)]


def test_cancel_twice_is_an_invalid_transition(monthly):
    subscription_cancel(subscription=monthly, at=utc(2024, 4, 21), at_period_end=False)

    with pytest.raises(InvalidTransition), transaction.atomic():
        subscription_cancel(subscription=monthly, at=utc(2024, 4, 22), at_period_end=False)


def test_a_canceled_subscription_has_no_upcoming_invoice(monthly):
    subscription_cancel(subscription=monthly, at=utc(2024, 4, 21), at_period_end=False)

    with pytest.raises(NoUpcomingInvoice):
        upcoming_invoice(subscription=monthly)


def test_cancel_credit_during_a_trial_is_nothing(make_customer, make_price):
    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(9900))], at=utc(2024, 4, 1), trial_days=14
    )

    subscription_cancel(subscription=subscription, at=utc(2024, 4, 5), at_period_end=False, prorate=True)

    assert customer_balance(customer_id=subscription.customer_id, currency="EUR") == 0


# -- pause and resume ----------------------------------------------------------------


def test_a_paused_subscription_is_not_billed(monthly):
    subscription = subscription_pause(subscription=monthly, at=utc(2024, 4, 10))

    assert subscription.status == Status.PAUSED
    assert list(due_subscriptions(as_of=utc(2024, 8, 1))) == []
    assert subscription_prepare_renewal(subscription=subscription, at=utc(2024, 5, 1)) is None
    with pytest.raises(NoUpcomingInvoice):
        upcoming_invoice(subscription=subscription)


def test_resume_starts_a_new_period_invoiced_at_once(monthly):
    subscription_pause(subscription=monthly, at=utc(2024, 4, 10))

    subscription = subscription_resume(subscription=monthly, at=utc(2024, 6, 15, 12))

    assert subscription.status == Status.ACTIVE
    assert subscription.billing_cycle_anchor == utc(2024, 6, 15, 12)
    assert (subscription.current_period_start, subscription.current_period_end) == (
        utc(2024, 6, 15, 12),
        utc(2024, 7, 15, 12),
    )
    invoice = Invoice.objects.get(subscription=subscription, billing_reason="subscription_cycle")
    assert invoice.period_start == utc(2024, 6, 15, 12)
    assert invoice.subtotal == 9900


def test_a_pause_with_a_resume_date_shows_the_resume_invoice(monthly):
    subscription = subscription_pause(subscription=monthly, at=utc(2024, 4, 10), resumes_at=utc(2024, 7, 1))

    preview = upcoming_invoice(subscription=subscription)

    assert [line.draft.period_start for line in preview.lines] == [utc(2024, 7, 1)]
    assert list(subscriptions_to_resume(as_of=utc(2024, 7, 1))) == [subscription]


def test_resume_refuses_an_active_subscription(monthly):
    with pytest.raises(SubscriptionError), transaction.atomic():
        subscription_resume(subscription=monthly, at=utc(2024, 4, 10))


# -- trials ------------------------------------------------------------------------------


@pytest.fixture
def trialing(make_customer, make_price):
    return subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(2900))], at=utc(2024, 4, 1), trial_days=14
    )


def test_the_trial_ends_at_the_boundary_and_the_run_bills_the_first_period(trialing):
    preview = upcoming_invoice(subscription=trialing, at=utc(2024, 4, 10))
    assert [(line.draft.amount, line.draft.period_start) for line in preview.lines] == [(2900, utc(2024, 4, 15))]

    renewable = subscription_prepare_renewal(subscription=trialing, at=utc(2024, 4, 15))

    assert renewable.status == Status.ACTIVE
    assert renewable.current_period_end == utc(2024, 4, 15)  # the run advances the period


def test_ending_a_trial_early_starts_a_paid_period_now(trialing):
    subscription = subscription_end_trial(subscription=trialing, at=utc(2024, 4, 5, 10))

    assert subscription.status == Status.ACTIVE
    assert subscription.trial_end == utc(2024, 4, 5, 10)
    assert (subscription.current_period_start, subscription.current_period_end) == (
        utc(2024, 4, 5, 10),
        utc(2024, 5, 5, 10),
    )
    assert Invoice.objects.get(subscription=subscription, billing_reason="subscription_cycle").subtotal == 2900


@pytest.mark.parametrize(
    ("behavior", "status"),
    [("create_invoice", Status.ACTIVE), ("pause", Status.PAUSED), ("cancel", Status.CANCELED)],
)
def test_a_trial_without_a_payment_method_ends_as_configured(behavior, status, make_customer, make_price):
    subscription = subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(2900))],
        at=utc(2024, 4, 1),
        trial_days=14,
        trial_end_behavior=behavior,
    )

    subscription = subscription_end_trial(subscription=subscription, at=utc(2024, 4, 15), has_payment_method=False)

    assert subscription.status == status


def test_a_change_during_a_trial_prorates_nothing(trialing, make_price):
    yearly = make_price(29000, cycle=YEARLY)

    subscription_change(subscription=trialing, items=[ItemSpec(yearly)], at=utc(2024, 4, 5))

    trialing.refresh_from_db()
    assert trialing.status == Status.TRIALING
    assert trialing.current_period_end == utc(2024, 4, 15)  # the trial goes on
    assert not InvoiceItem.objects.filter(subscription=trialing).exists()
    assert Invoice.objects.filter(subscription=trialing).count() == 1  # the trial's zero invoice
    preview = upcoming_invoice(subscription=trialing, at=utc(2024, 4, 5))
    assert [(line.draft.amount, line.draft.period_end) for line in preview.lines] == [(29000, utc(2025, 4, 15))]


def test_usage_during_a_trial_is_free(make_customer, make_price, make_metered_price):
    customer = make_customer()
    metered = make_metered_price("1")
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(make_price(2900)), ItemSpec(metered)], at=utc(2024, 4, 1), trial_days=14
    )
    record_usage(customer, metered.meter, (Decimal(1000), utc(2024, 4, 3)))

    preview = upcoming_invoice(subscription=subscription, at=utc(2024, 4, 10))

    assert [line.draft.kind for line in preview.lines] == ["subscription"]


# -- scheduled changes ----------------------------------------------------------------------


def test_a_downgrade_scheduled_at_period_end_applies_without_proration(monthly, make_price):
    starter = make_price(2900, nickname="Starter")
    change = subscription_schedule_change(subscription=monthly, items=[ItemSpec(starter)])

    assert change.effective_at == utc(2024, 5, 1)
    # The upcoming invoice already bills the new plan.
    assert [line.draft.amount for line in upcoming_invoice(subscription=monthly, at=utc(2024, 4, 20)).lines] == [2900]
    assert scheduled_changes_apply_due(subscription=monthly, at=utc(2024, 4, 30)) is None

    applied = scheduled_changes_apply_due(subscription=monthly, at=utc(2024, 5, 1))

    assert applied.status == ScheduledChange.Status.APPLIED
    assert list(monthly.items.values_list("price__nickname", flat=True)) == ["Starter"]
    assert not InvoiceItem.objects.filter(subscription=monthly).exists()
    assert SubscriptionChange.objects.get(subscription=monthly, kind="scheduled").mrr_after == 2900


def test_a_scheduled_cycle_change_re_anchors_at_the_boundary(monthly, make_price):
    yearly = make_price(99000, cycle=YEARLY)
    subscription_schedule_change(subscription=monthly, items=[ItemSpec(yearly)])

    subscription_prepare_renewal(subscription=monthly, at=utc(2024, 5, 1))

    monthly.refresh_from_db()
    assert monthly.cycle["unit"] == "year"
    assert monthly.billing_cycle_anchor == utc(2024, 5, 1)


def test_a_cycle_change_cannot_be_scheduled_mid_period(monthly, make_price):
    with pytest.raises(SubscriptionError) as error, transaction.atomic():
        subscription_schedule_change(
            subscription=monthly, items=[ItemSpec(make_price(99000, cycle=YEARLY))], effective_at=utc(2024, 4, 20)
        )

    assert error.value.code == "cycle_mid_period"


def test_scheduling_again_replaces_the_pending_change_and_it_can_be_canceled(monthly, make_price):
    first = subscription_schedule_change(subscription=monthly, items=[ItemSpec(make_price(2900))])
    second = subscription_schedule_change(subscription=monthly, items=[ItemSpec(make_price(4900))])

    first.refresh_from_db()
    assert first.status == ScheduledChange.Status.CANCELED
    scheduled_change_cancel(scheduled_change=second)
    assert not ScheduledChange.objects.filter(status="pending").exists()


def test_removing_a_metered_price_bills_its_usage_so_far(make_customer, make_price, make_metered_price):
    customer = make_customer()
    plan, metered = make_price(2900), make_metered_price("3", nickname="Calls")
    subscription = subscription_create(customer=customer, items=[ItemSpec(plan), ItemSpec(metered)], at=utc(2024, 4, 1))
    record_usage(customer, metered.meter, (Decimal(10), utc(2024, 4, 2)))

    subscription_change(subscription=subscription, items=[ItemSpec(plan)], at=utc(2024, 4, 16))

    item = InvoiceItem.objects.get(subscription=subscription, invoice__isnull=True)
    assert (item.amount, item.proration, item.period_end) == (30, False, utc(2024, 4, 16))


# -- discounts over renewals -------------------------------------------------------------


def test_a_repeating_coupon_stops_after_its_periods(make_customer, make_price):
    from billing.services.coupons import discount_periods_advance_bulk, discounts_for_period

    coupon = Coupon.objects.create(
        name="3 months", percent_off=Decimal(50), duration="repeating", duration_in_periods=3
    )
    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(2900))], at=utc(2024, 1, 1), coupon=coupon
    )
    discounted = [True]  # the first invoice
    for _ in range(5):  # five renewals, as the billing run does them
        subscription.refresh_from_db()
        discounted.append(bool(discounts_for_period(subscription=subscription)))
        discount_periods_advance_bulk(subscription_ids=[subscription.pk])

    assert discounted == [True, True, True, False, False, False]
