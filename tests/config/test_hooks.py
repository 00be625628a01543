"""config.hooks: payments tells dunning about outcomes without importing it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from billing.services import dunning, payments
from config.hooks import Hook


def test_receivers_run_in_registration_order_once_each():
    hook = Hook("test.hook")
    calls = []

    def first(**kwargs):
        calls.append(("first", kwargs))

    def second(**kwargs):
        calls.append(("second", kwargs))

    hook.connect(first)
    hook.connect(second)
    hook.connect(first)  # again: no second registration
    hook.fire(invoice=1)

    assert calls == [("first", {"invoice": 1}), ("second", {"invoice": 1})]


def test_a_required_hook_without_receiver_raises_instead_of_doing_nothing():
    hook = Hook("test.required", required=True)

    with pytest.raises(ImproperlyConfigured, match="test.required"):
        hook.fire(invoice=1)


def test_dunning_is_registered_on_the_payment_outcomes_at_start_up():
    assert dunning.dunning_on_failure in payments.payment_failed.receivers
    assert dunning.dunning_on_payment in payments.payment_recorded.receivers


def test_negative_control_a_collection_failure_without_dunning_registered_is_an_error(monkeypatch):
    # If BillingConfig.ready() did not register dunning, a failed charge must not pass silently.
    monkeypatch.setattr(payments.payment_failed, "_receivers", [])

    with pytest.raises(ImproperlyConfigured, match="billing.payment_failed"):
        payments._after_failure(invoice=None, payment=None, at=None, scheduled_retry=False)
