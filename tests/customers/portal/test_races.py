"""Portal writes that lock, raced by two threads on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing.models import PaymentMethod
from billing.services import payments
from billing.services.payments import payment_method_attach, payment_method_set_default
from billing.services.subscriptions import SubscriptionError
from customers.portal import cancellation
from customers.portal.cancellation import cancellation_form, portal_subscription_cancel
from feedback.models import Question, Survey, SurveyResponse, Trigger
from tests.billing.payments.conftest import card
from tests.billing.services.test_races import errors_of, race, slowed
from tests.feedback.conftest import CHURN_CHOICES, add_question

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


def test_two_survey_confirmations_cancel_once_and_record_one_response(postgres_only, account, monkeypatch):
    customer, user, subscription, _ = account
    survey = Survey.objects.create(name="Churn", trigger=Trigger.CANCELLATION)
    reason = add_question(survey, Question.Kind.SINGLE, "Main reason", choices=CHURN_CHOICES)
    slowed(monkeypatch, cancellation, "subscription_lock")

    def confirm():
        form = cancellation_form(customer, {f"q_{reason.pk}": "too_expensive"})
        assert form.is_valid(), form.errors
        with transaction.atomic():
            return portal_subscription_cancel(
                subscription=subscription, form=form, at_period_end=True, prorate=False, acting_user=user
            )

    results = race(confirm, confirm)

    assert len(errors_of(results, SubscriptionError)) == 1
    assert errors_of(results, Exception) == errors_of(results, SubscriptionError)
    assert SurveyResponse.objects.filter(subscription=subscription).count() == 1
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end and subscription.cancellation_reason == "too_expensive"


def test_two_subscribe_confirmations_start_one_subscription(postgres_only, account, plans, monkeypatch):
    from billing.models import Subscription
    from billing.services.subscriptions import ItemSpec, subscription_cancel
    from customers.portal import subscribe
    from customers.portal.subscribe import portal_subscription_start

    customer, user, subscription, _ = account
    subscription_cancel(subscription=subscription, at_period_end=False)
    slowed(monkeypatch, subscribe, "customers_lock_balance")

    def confirm():
        return portal_subscription_start(customer=customer, items=[ItemSpec(plans["pro"], 1)], acting_user=user)

    results = race(confirm, confirm)

    assert len(errors_of(results, SubscriptionError)) == 1
    assert errors_of(results, Exception) == errors_of(results, SubscriptionError)
    started = Subscription.objects.filter(customer=customer, status__in=["active", "trialing"])
    assert started.count() == 1 and started.get().invoices.count() == 1
