"""Dunning runs in a test clock's simulated time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.models import DunningCase, Payment, Subscription
from billing.services.billing_run import billing_run_start
from billing.services.dunning import dunning_run_due, invoices_collect
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.test_clocks import test_clock_advance, test_clock_create
from config.events.models import DomainEvent
from tests.billing.payments.conftest import DECLINED, T0, card

pytestmark = pytest.mark.django_db


def test_retries_happen_at_their_simulated_instants(make_customer, make_price):
    clock = test_clock_create(name="dunning", frozen_time=T0)
    customer = make_customer(test_clock=clock)
    payment_method_attach(customer=customer, source=card(DECLINED))
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoice = subscription.invoices.get()
    invoices_collect(invoice_ids=[invoice.pk])

    test_clock_advance(clock=clock, to=T0 + timedelta(days=10))
    dunning_run_due(test_clock=clock)  # what the lead's hook calls after the billing run

    attempts = list(Payment.objects.filter(invoice=invoice).order_by("attempt").values_list("attempted_at", flat=True))
    assert attempts == [T0 + timedelta(days=day) for day in (0, 1, 3, 5, 7)]
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.EXHAUSTED
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    exhausted = DomainEvent.objects.get(type="dunning.exhausted")
    assert exhausted.occurred_at == T0 + timedelta(days=7)


def test_real_time_runs_leave_test_clock_customers_alone(make_customer, make_price):
    clock = test_clock_create(name="apart", frozen_time=T0)
    customer = make_customer(test_clock=clock)
    payment_method_attach(customer=customer, source=card(DECLINED))
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoices_collect(invoice_ids=[subscription.invoices.get().pk])

    assert dunning_run_due(as_of=T0 + timedelta(days=30)) == 0


def test_a_billing_run_chunk_queues_collection_of_its_invoices(
    make_customer, make_price, django_capture_on_commit_callbacks
):
    clock = test_clock_create(name="renewals", frozen_time=T0)
    customer = make_customer(test_clock=clock)
    payment_method_attach(customer=customer, source=card("4242424242424242"))
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])

    with django_capture_on_commit_callbacks(execute=True):
        billing_run_start(as_of=subscription.current_period_end + timedelta(hours=1), test_clock=clock)

    renewal = subscription.invoices.get(billing_reason="subscription_cycle")
    payment = Payment.objects.get(invoice=renewal)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.attempted_at == renewal.finalized_at  # charged in simulated time


# -- one advance moves at most two periods of the shortest subscription (Stripe's rule) ---------


def test_an_advance_past_two_periods_of_the_shortest_subscription_is_refused_and_moves_nothing(
    make_customer, make_price
):
    from django.core.exceptions import ValidationError

    from billing.models import TestClock
    from invoices.models import Invoice

    # given a monthly subscription on a clock
    clock = test_clock_create(name="limit", frozen_time=T0)
    customer = make_customer(test_clock=clock)
    payment_method_attach(customer=customer, source=card("4242424242424242"))
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    first_renewal = subscription.current_period_end
    invoices_before = Invoice.objects.count()

    # when it is advanced a century at once
    with pytest.raises(ValidationError, match="at most two billing periods"):
        test_clock_advance(clock=clock, to=T0 + timedelta(days=36500))

    # then nothing moved or was billed
    clock.refresh_from_db()
    assert (clock.frozen_time, clock.status) == (T0, TestClock.Status.READY)
    assert Invoice.objects.count() == invoices_before

    # and two periods at once still go, then two more from there
    second_renewal = advance_limit_of(clock)
    assert first_renewal < second_renewal <= first_renewal + timedelta(days=31)
    test_clock_advance(clock=clock, to=second_renewal)
    assert Invoice.objects.count() == invoices_before + 2
    test_clock_advance(clock=clock, to=advance_limit_of(clock))
    assert Invoice.objects.count() == invoices_before + 4


def test_a_clock_without_subscriptions_advances_as_far_as_asked(make_customer):
    clock = test_clock_create(name="empty", frozen_time=T0)
    make_customer(test_clock=clock)

    test_clock_advance(clock=clock, to=T0 + timedelta(days=3650))

    clock.refresh_from_db()
    assert clock.frozen_time == T0 + timedelta(days=3650)


def advance_limit_of(clock):
    from billing.services.test_clocks import test_clock_advance_limit

    clock.refresh_from_db()
    return test_clock_advance_limit(clock=clock, frozen_time=clock.frozen_time)
