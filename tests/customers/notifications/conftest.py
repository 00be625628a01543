"""Notification fixtures: a customer living on a test clock, and a helper that runs the consumer."""

from __future__ import annotations

import pytest
from django.core import mail

from billing.services.payments import payment_method_attach
from billing.services.test_clocks import test_clock_advance, test_clock_advance_limit, test_clock_create
from customers.notifications.consumer import notifications_consume_events
from tests.billing.payments.conftest import T0, card
from tests.billing.services.conftest import billing_brand, make_customer, make_price  # noqa: F401


@pytest.fixture
def clock(db):
    return test_clock_create(name="notifications", frozen_time=T0)


@pytest.fixture
def clocked_customer(make_customer, clock):  # noqa: F811
    def make(number: str | None = "4242424242424242", *, exp=(12, 2030), **fields):
        customer = make_customer(test_clock=clock, email="anna@client.example", **fields)
        if number is not None:
            source = card(number)
            source["card"]["exp_month"], source["card"]["exp_year"] = exp
            payment_method_attach(customer=customer, source=source)
        return customer

    return make


@pytest.fixture
def consume(django_capture_on_commit_callbacks):
    """Run the outbox consumer (and the delivery tasks it queues); returns the new emails."""

    def run():
        before = len(mail.outbox)
        with django_capture_on_commit_callbacks(execute=True):
            notifications_consume_events()
        return mail.outbox[before:]

    return run


@pytest.fixture
def advance(clock, django_capture_on_commit_callbacks):
    def run(to):
        # In steps of at most two periods of the shortest subscription, as Stripe requires too.
        while True:
            limit = test_clock_advance_limit(clock=clock, frozen_time=clock.frozen_time)
            step = to if limit is None or to <= limit else limit
            with django_capture_on_commit_callbacks(execute=True):
                test_clock_advance(clock=clock, to=step)
            clock.refresh_from_db()
            if step == to:
                return

    return run


__all__ = ["billing_brand", "make_customer", "make_price"]
