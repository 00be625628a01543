"""Triggers: domain events become invitations, sent when due on the customer's clock, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from billing.services.changes import subscription_change
from billing.services.dunning import invoices_collect
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create
from billing.services.test_clocks import test_clock_advance, test_clock_create
from config.events.log import event_record
from config.events.models import DomainEvent, EventCursor
from feedback.errors import FeedbackError
from feedback.models import Invitation, Question, Survey, Trigger
from feedback.services import (
    feedback_events_consume,
    feedback_feature_event_record,
    feedback_invitations_send_due,
    survey_response_record,
)
from feedback.services.triggers import CONSUMER_NAME
from tests.billing.payments.conftest import INSUFFICIENT_FUNDS, VISA_OK, card
from tests.feedback.conftest import T0, add_question, process, questions

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_clock(make_customer):
    """A customer living on a test clock frozen at T0."""
    clock = test_clock_create(name="feedback", frozen_time=T0)
    return make_customer(test_clock=clock), clock


def nps_only(make_survey, trigger, **fields) -> Survey:
    survey = make_survey(trigger, **fields)
    add_question(survey, Question.Kind.NPS, "Recommend us?")
    return survey


def test_n_days_after_a_subscription_starts_on_the_test_clock(on_clock, make_price, nps_survey):
    customer, clock = on_clock
    subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])

    process()
    invitation = Invitation.objects.get()
    assert invitation.status == Invitation.Status.SCHEDULED and invitation.due_at == T0 + timedelta(days=30)
    assert invitation.trigger == Trigger.SUBSCRIPTION_STARTED and not mail.outbox

    test_clock_advance(clock=clock, to=T0 + timedelta(days=29, hours=23))
    process()
    assert Invitation.objects.get().status == Invitation.Status.SCHEDULED

    test_clock_advance(clock=clock, to=T0 + timedelta(days=30))
    process()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.SENT and invitation.sent_at == T0 + timedelta(days=30)
    assert [message.to for message in mail.outbox] == [[customer.email]]


def test_the_trigger_fires_once_however_often_consumer_and_scan_run(on_clock, make_price, nps_survey):
    customer, clock = on_clock
    subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    test_clock_advance(clock=clock, to=T0 + timedelta(days=31))

    for _ in range(3):
        process()
    # Even a consumer whose cursor was lost (restored backup) re-reads without re-inviting.
    EventCursor.objects.filter(name=CONSUMER_NAME).update(last_event_id=0)
    process()

    assert Invitation.objects.count() == 1
    assert len(mail.outbox) == 1


def test_an_event_committed_after_the_lag_below_the_cursor_still_invites(make_customer, nps_survey):
    # A transaction that stays open longer than TARIF_FEEDBACK_EVENT_LAG_SECONDS (0 here):
    # a lag alone let the cursor jump over its event for good.
    customer = make_customer()

    def started(subscription: int) -> DomainEvent:
        return event_record(
            type="customer.subscription.created",
            object_type="subscription",
            object_id=subscription,
            customer_id=customer.pk,
            occurred_at=T0,
            data={"subscription": subscription},
        )

    late, visible = started(998), started(999)
    late_id = late.pk
    late.delete()  # its id is taken, its row not yet committed
    assert feedback_events_consume().invitations_scheduled == 1
    assert EventCursor.objects.get(name=CONSUMER_NAME).last_event_id == visible.pk > late_id

    late.pk = late_id
    late.save(force_insert=True)  # committed now, below the cursor
    assert feedback_events_consume().invitations_scheduled == 1
    assert sorted(Invitation.objects.values_list("trigger_key", flat=True)) == [
        "subscription:998:started",
        "subscription:999:started",
    ]


def test_the_consumer_keeps_a_cursor_and_waits_for_young_events(settings, make_customer, nps_survey):
    customer = make_customer()
    event_record(
        type="customer.subscription.created",
        object_type="subscription",
        object_id=999,
        customer_id=customer.pk,
        occurred_at=T0,
        data={"subscription": 999},
    )
    settings.TARIF_FEEDBACK_EVENT_LAG_SECONDS = 3600

    assert feedback_events_consume().events_read == 0
    assert not Invitation.objects.exists()

    settings.TARIF_FEEDBACK_EVENT_LAG_SECONDS = 0
    result = feedback_events_consume()
    assert result.events_read == 1 and result.invitations_scheduled == 1
    assert EventCursor.objects.get(name=CONSUMER_NAME).last_event_id == DomainEvent.objects.get().pk
    assert feedback_events_consume().events_read == 0


def test_a_plan_change_invites_n_days_later_but_a_quantity_change_does_not(on_clock, make_price, make_survey):
    customer, clock = on_clock
    survey = nps_only(make_survey, Trigger.PLAN_CHANGED, delay_days=7)
    basic, pro = make_price(2900), make_price(4900)
    subscription = subscription_create(customer=customer, items=[ItemSpec(basic)])

    subscription_change(subscription=subscription, items=[ItemSpec(basic, quantity=2)], proration="none")
    process()
    assert not Invitation.objects.exists()

    test_clock_advance(clock=clock, to=T0 + timedelta(days=3))
    subscription_change(subscription=subscription, items=[ItemSpec(pro, quantity=2)], proration="none")
    process()
    invitation = Invitation.objects.get()
    assert invitation.survey == survey and invitation.due_at == T0 + timedelta(days=10)

    test_clock_advance(clock=clock, to=T0 + timedelta(days=10))
    process()
    assert Invitation.objects.get().status == Invitation.Status.SENT


def test_a_feature_event_from_the_api_invites_to_that_features_survey(make_customer, make_survey, now):
    customer = make_customer()
    export_survey = nps_only(make_survey, Trigger.FEATURE_USED, feature="export", name="export")
    nps_only(make_survey, Trigger.FEATURE_USED, feature="reports", name="reports")

    feedback_feature_event_record(customer=customer, feature="export")
    feedback_feature_event_record(customer=customer, feature="export", at=T0 + timedelta(hours=1))
    process()

    invitation = Invitation.objects.get()
    assert invitation.survey == export_survey and invitation.status == Invitation.Status.SENT
    assert invitation.trigger_key == "feature:export"


def test_a_feature_key_is_checked(make_customer):
    with pytest.raises(FeedbackError):
        feedback_feature_event_record(customer=make_customer(), feature="no spaces please", at=T0)


def test_a_recovered_failed_payment_invites(
    make_customer, make_price, make_survey, now, django_capture_on_commit_callbacks
):
    survey = nps_only(make_survey, Trigger.PAYMENT_RECOVERED)
    customer = make_customer()
    payment_method_attach(customer=customer, source=card(INSUFFICIENT_FUNDS))
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))], at=T0)
    invoices_collect(invoice_ids=[subscription.invoices.get().pk])
    process()
    assert not Invitation.objects.exists()  # failing is not recovering

    with django_capture_on_commit_callbacks(execute=True):
        payment_method_attach(customer=customer, source=card(VISA_OK))  # the retry runs at once and succeeds
    assert DomainEvent.objects.filter(type="dunning.recovered").exists()
    process()

    invitation = Invitation.objects.get()
    assert invitation.survey == survey and invitation.status == Invitation.Status.SENT


def test_a_cancellation_elsewhere_emails_the_churn_survey(make_customer, make_price, cancellation_survey, now):
    customer = make_customer()
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))], at=T0)

    subscription_cancel(subscription=subscription, at_period_end=True, reason="budget")
    subscription_cancel(subscription=subscription, at_period_end=False, at=T0 + timedelta(days=1))
    now.move_to(T0 + timedelta(days=1))
    process()

    invitation = Invitation.objects.get()
    assert invitation.trigger == Trigger.CANCELLATION and invitation.status == Invitation.Status.SENT


def test_no_churn_email_when_the_customer_answered_in_the_portal(make_customer, make_price, cancellation_survey, now):
    customer = make_customer()
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))], at=T0)
    reason = questions(cancellation_survey)[Question.Kind.SINGLE]
    survey_response_record(
        survey=cancellation_survey,
        customer=customer,
        answers={reason.pk: "too_expensive"},
        trigger=Trigger.CANCELLATION,
        subscription=subscription,
    )

    subscription_cancel(subscription=subscription, at_period_end=False)
    process()

    assert not Invitation.objects.exists()


def test_involuntary_cancellation_asks_nothing(make_customer, cancellation_survey):
    customer = make_customer()
    event_record(
        type="customer.subscription.deleted",
        object_type="subscription",
        object_id=5,
        customer_id=customer.pk,
        occurred_at=T0,
        data={"subscription": 5, "reason": "dunning_exhausted"},
    )
    process()

    assert not Invitation.objects.exists()


def test_throttling_across_surveys(settings, make_customer, make_survey, now):
    settings.TARIF_FEEDBACK_THROTTLE_DAYS = 30
    customer = make_customer()
    first = nps_only(make_survey, Trigger.FEATURE_USED, feature="export", name="first")
    nps_only(make_survey, Trigger.FEATURE_USED, feature="import", name="second")

    feedback_feature_event_record(customer=customer, feature="export")
    process()
    now.move_to(T0 + timedelta(days=29))
    feedback_feature_event_record(customer=customer, feature="import")
    process()

    statuses = dict(Invitation.objects.values_list("survey__name", "status"))
    assert statuses == {"first": Invitation.Status.SENT, "second": Invitation.Status.THROTTLED}
    assert len(mail.outbox) == 1
    assert Invitation.objects.get(survey__name="second").skip_reason == "asked within 30 days"
    assert first.invitations.get().sent_at == T0


def test_after_the_window_the_customer_may_be_asked_again(settings, make_customer, make_survey, now):
    settings.TARIF_FEEDBACK_THROTTLE_DAYS = 30
    customer = make_customer()
    nps_only(make_survey, Trigger.FEATURE_USED, feature="export", name="first")
    nps_only(make_survey, Trigger.FEATURE_USED, feature="import", name="second")

    feedback_feature_event_record(customer=customer, feature="export")
    process()
    now.move_to(T0 + timedelta(days=30, seconds=1))
    feedback_feature_event_record(customer=customer, feature="import")
    process()

    assert set(Invitation.objects.values_list("status", flat=True)) == {Invitation.Status.SENT}


def test_a_per_survey_window_ignores_other_surveys(make_customer, make_survey, now):
    customer = make_customer()
    nps_only(make_survey, Trigger.FEATURE_USED, feature="export", name="first")
    nps_only(
        make_survey,
        Trigger.FEATURE_USED,
        feature="import",
        name="own window",
        throttle_scope=Survey.ThrottleScope.SURVEY,
        throttle_days=90,
    )

    feedback_feature_event_record(customer=customer, feature="export")
    feedback_feature_event_record(customer=customer, feature="import")
    process()

    assert set(Invitation.objects.values_list("status", flat=True)) == {Invitation.Status.SENT}


def test_an_answer_in_the_portal_counts_as_being_asked(make_customer, make_survey, cancellation_survey, now):
    customer = make_customer()
    nps_only(make_survey, Trigger.FEATURE_USED, feature="export")
    reason = questions(cancellation_survey)[Question.Kind.SINGLE]
    survey_response_record(
        survey=cancellation_survey, customer=customer, answers={reason.pk: "switching"}, trigger=Trigger.CANCELLATION
    )

    feedback_feature_event_record(customer=customer, feature="export")
    process()

    assert Invitation.objects.get().status == Invitation.Status.THROTTLED


def test_an_inactive_survey_schedules_nothing_and_one_switched_off_later_is_skipped(make_customer, make_survey, now):
    customer = make_customer()
    survey = nps_only(make_survey, Trigger.FEATURE_USED, feature="export", delay_days=2)
    nps_only(make_survey, Trigger.FEATURE_USED, feature="import", active=False)

    feedback_feature_event_record(customer=customer, feature="import")
    feedback_feature_event_record(customer=customer, feature="export")
    feedback_events_consume()
    Survey.objects.filter(pk=survey.pk).update(active=False)
    now.move_to(T0 + timedelta(days=2))
    feedback_invitations_send_due()

    assert list(Invitation.objects.values_list("status", flat=True)) == [Invitation.Status.SKIPPED]
    assert not mail.outbox
