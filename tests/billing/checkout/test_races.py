"""Checkout completion exactly once on PostgreSQL: concurrent returns, a second tab, a slow first.

The first completion is slowed down inside its lock (after creating the customer), so without
the lock the second would create a second customer, subscription and invoice meanwhile.
"""

from __future__ import annotations

import time

import pytest

from billing.checkout import services
from billing.checkout.errors import CheckoutSessionClosed
from billing.checkout.models import CheckoutSession
from billing.checkout.services import checkout_session_complete, checkout_session_expire
from billing.models import PaymentMethod, SandboxCharge, Subscription
from config.events.models import DomainEvent
from customers.models import Customer
from invoices.models import Invoice
from tests.billing.checkout.conftest import FR_BUSINESS
from tests.billing.checkout.helpers import enter_card
from tests.billing.services.test_races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PAUSE = 0.4


@pytest.fixture
def slow_customer_create(monkeypatch):
    real = services.customer_create

    def slow(**kwargs):
        customer = real(**kwargs)
        time.sleep(PAUSE)
        return customer

    monkeypatch.setattr(services, "customer_create", slow)


def test_concurrent_returns_complete_the_session_once(postgres_only, make_session, slow_customer_create):
    session = make_session()
    gateway_session_id = enter_card(session, FR_BUSINESS)

    def complete():
        return checkout_session_complete(
            session=CheckoutSession.objects.get(pk=session.pk), gateway_session_id=gateway_session_id
        )

    results = race(complete, complete, complete)
    assert all(isinstance(result, CheckoutSession) for result in results), results
    assert {result.status for result in results} == {"complete"}
    assert {result.customer_id for result in results} == {Customer.objects.get().pk}
    assert Subscription.objects.count() == 1 and Invoice.objects.count() == 1 and PaymentMethod.objects.count() == 1
    assert DomainEvent.objects.filter(type="checkout.session.completed").count() == 1
    # The card check was made with one idempotency key: one authorization at the gateway.
    assert SandboxCharge.objects.filter(idempotency_key__startswith=f"checkout:{session.public_id}:").count() == 1


def test_expiry_racing_completion_leaves_one_outcome(postgres_only, make_session, slow_customer_create):
    session = make_session()
    gateway_session_id = enter_card(session, FR_BUSINESS)

    def complete():
        return checkout_session_complete(
            session=CheckoutSession.objects.get(pk=session.pk), gateway_session_id=gateway_session_id
        )

    def expire():
        time.sleep(PAUSE / 4)  # lands while the completion holds the lock
        return checkout_session_expire(session=CheckoutSession.objects.get(pk=session.pk))

    completed, expired = race(complete, expire)
    final = CheckoutSession.objects.get(pk=session.pk)
    if isinstance(completed, CheckoutSession):
        assert final.status == "complete" and isinstance(expired, CheckoutSessionClosed)
        assert Customer.objects.count() == 1
    else:
        assert final.status == "expired" and isinstance(completed, CheckoutSessionClosed)
        assert not Customer.objects.exists()


@pytest.mark.parametrize("method", ["bank_transfer", "sepa_debit"])
def test_concurrent_direct_submissions_complete_the_session_once(
    postgres_only, make_session, slow_customer_create, method
):
    """A double-clicked "Confirm" on a bank transfer or a SEPA mandate signed on the page."""
    seller = make_session().brand
    seller.iban, seller.bic = "FR7630006000011234567890189", "AGRIFRPP"
    seller.save()
    session = make_session(payment_method_types=[method])
    CheckoutSession.objects.filter(pk=session.pk).update(details=FR_BUSINESS, payment_method_type=method)
    source = {"iban": "AT611904300234573201"} if method == "sepa_debit" else None

    def submit():
        return services.checkout_session_complete_direct(
            session=CheckoutSession.objects.get(pk=session.pk), source=source
        )

    results = race(submit, submit, submit)
    assert all(isinstance(result, CheckoutSession) for result in results), results
    assert {result.status for result in results} == {"complete"}
    assert Customer.objects.count() == 1 and Subscription.objects.count() == 1 and Invoice.objects.count() == 1
    assert PaymentMethod.objects.filter(customer__isnull=False).count() == (1 if method == "sepa_debit" else 0)
    assert DomainEvent.objects.filter(type="checkout.session.completed").count() == 1
