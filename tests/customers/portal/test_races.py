"""Portal writes that lock, raced by two threads on PostgreSQL."""

from __future__ import annotations

import pytest

from billing.models import PaymentMethod
from billing.services import payments
from billing.services.payments import payment_method_attach, payment_method_set_default
from tests.billing.payments.conftest import card
from tests.billing.services.test_races import errors_of, race, slowed

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_default_switches_serialize_and_leave_one_default(postgres_only, make_customer, monkeypatch):
    customer = make_customer()
    first = payment_method_attach(customer=customer, source=card("4242424242424242"))
    second = payment_method_attach(customer=customer, source=card("5555555555554444"), make_default=False)
    third = payment_method_attach(customer=customer, source=card("4000000000009995"), make_default=False)
    slowed(monkeypatch, payments, "_customer_lock")

    results = race(
        lambda: payment_method_set_default(payment_method=second),
        lambda: payment_method_set_default(payment_method=third),
    )

    assert errors_of(results, Exception) == []
    defaults = list(PaymentMethod.objects.filter(customer=customer, is_default=True, active=True))
    assert len(defaults) == 1 and defaults[0] in (second, third) and first not in defaults
