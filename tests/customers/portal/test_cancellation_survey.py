"""Cancelling in the portal through the feedback app's cancellation survey."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing.models import Subscription
from billing.services.subscriptions import SubscriptionError
from config.events.models import DomainEvent
from customers.portal import cancellation
from customers.portal.cancellation import (
    CancellationReasonForm,
    CancellationSurveyForm,
    cancellation_form,
    portal_subscription_cancel,
)
from feedback.models import Invitation, Question, SurveyResponse, Trigger
from feedback.services import feedback_events_consume
from tests.customers.portal.conftest import fresh_step_up
from tests.feedback.conftest import CHURN_CHOICES, add_question

pytestmark = pytest.mark.django_db


@pytest.fixture
def churn_survey(make_survey):
    """An NPS, the main reason (single choice), what was missing (multiple, optional), free text (optional)."""
    survey = make_survey(
        Trigger.CANCELLATION,
        name="Churn",
        title_fr="Avant de partir",
        title_en="Before you go",
        intro_fr="Deux minutes, promis.",
        intro_en="Two minutes, promised.",
    )
    nps = add_question(survey, Question.Kind.NPS, "Recommend us?")
    reason = add_question(survey, Question.Kind.SINGLE, "Main reason", choices=CHURN_CHOICES)
    missing = add_question(
        survey,
        Question.Kind.MULTIPLE,
        "What was missing?",
        required=False,
        choices=(("sepa", "Prélèvement SEPA", "SEPA debit"), ("api", "API", "API")),
    )
    text = add_question(survey, Question.Kind.TEXT, "Tell us more", required=False)
    return survey, {"nps": nps, "reason": reason, "missing": missing, "text": text}


@pytest.fixture
def make_survey(db):
    from feedback.models import Survey

    def make(trigger: str, **fields) -> Survey:
        return Survey.objects.create(trigger=trigger, **fields)

    return make


def cancel_url(subscription) -> str:
    return f"/portal/subscriptions/{subscription.pk}/cancel/"


def answers(questions, **values) -> dict[str, object]:
    return {f"q_{questions[name].pk}": value for name, value in values.items()}


def test_the_survey_replaces_the_reason_form_in_the_customers_language(portal, account, churn_survey):
    customer, _, subscription, _ = account
    customer.preferred_language = "en"
    customer.save()
    fresh_step_up(portal)

    page = portal.get(cancel_url(subscription)).content.decode()

    assert "Before you go" in page and "Two minutes, promised." in page
    assert "Recommend us? (en)" in page and "Too expensive" in page and "Trop cher" not in page
    assert 'name="reason"' not in page  # not the plain reason form
    assert 'id="confirm-cancel"' in page


def test_a_french_customer_gets_the_survey_in_french(portal, account, churn_survey):
    fresh_step_up(portal)

    page = portal.get(cancel_url(account[2])).content.decode()

    assert "Avant de partir" in page and "Recommend us? (fr)" in page and "Trop cher" in page
    assert "Dites-nous pourquoi vous partez." in page
    assert "Too expensive" not in page


def test_valid_answers_are_recorded_with_the_cancellation(portal, account, churn_survey, settings):
    settings.TARIF_FEEDBACK_EVENT_LAG_SECONDS = 0
    customer, user, subscription, _ = account
    survey, questions = churn_survey
    fresh_step_up(portal)

    response = portal.post(
        cancel_url(subscription),
        answers(questions, nps="3", reason="switching", missing=["sepa", "api"], text="  Moving to a rival  "),
    )

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end
    assert subscription.cancellation_reason == "switching, sepa, api: Moving to a rival"
    recorded = SurveyResponse.objects.get()
    assert (recorded.survey, recorded.customer, recorded.subscription) == (survey, customer, subscription)
    assert recorded.trigger == Trigger.CANCELLATION and recorded.language == "fr" and recorded.acting_user == user
    assert recorded.answers.get(question=questions["nps"]).score == 3
    assert set(recorded.answers.get(question=questions["missing"]).choices.values_list("code", flat=True)) == {
        "sepa",
        "api",
    }
    event = DomainEvent.objects.get(type="feedback.response_received")
    assert event.data["subscription"] == subscription.pk

    # The feedback consumer sees the cancellation but does not email the same survey again.
    feedback_events_consume()
    assert not Invitation.objects.exists()


def test_invalid_answers_cancel_nothing_and_record_nothing(portal, account, churn_survey):
    subscription = account[2]
    _, questions = churn_survey
    fresh_step_up(portal)
    events_before = DomainEvent.objects.count()

    missing_nps = portal.post(cancel_url(subscription), answers(questions, reason="switching"))
    bad_choice = portal.post(cancel_url(subscription), answers(questions, nps="11", reason="bored"))
    empty = portal.post(cancel_url(subscription), {})

    for response in (missing_nps, bad_choice, empty):
        assert response.status_code == 200
        assert 'role="alert"' in response.content.decode()
    assert "Recommend us? (fr)" in missing_nps.content.decode()
    subscription.refresh_from_db()
    assert not subscription.cancel_at_period_end and subscription.status == Subscription.Status.ACTIVE
    assert subscription.cancellation_reason == ""
    assert not SurveyResponse.objects.exists()
    assert DomainEvent.objects.count() == events_before


def test_a_refused_cancellation_takes_the_answers_back(portal, account, churn_survey, monkeypatch):
    subscription = account[2]
    _, questions = churn_survey
    fresh_step_up(portal)

    def refuse(**kwargs):
        raise SubscriptionError("The billing system refused.")

    monkeypatch.setattr(cancellation, "subscription_cancel", refuse)
    response = portal.post(cancel_url(subscription), answers(questions, nps="8", reason="too_expensive"))

    assert response.status_code == 200 and "The billing system refused." in response.content.decode()
    assert not SurveyResponse.objects.exists()
    assert not DomainEvent.objects.filter(type="feedback.response_received").exists()


def test_without_an_active_survey_the_plain_reason_form_is_asked(portal, account, make_survey):
    make_survey(Trigger.CANCELLATION, name="Draft", active=False)
    subscription = account[2]
    fresh_step_up(portal)

    assert isinstance(cancellation_form(account[0]), CancellationReasonForm)
    assert 'name="reason"' in portal.get(cancel_url(subscription)).content.decode()
    portal.post(cancel_url(subscription), {"reason": "unused"})

    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end and subscription.cancellation_reason == "unused"
    assert not SurveyResponse.objects.exists()


def test_a_second_confirmation_is_refused_and_records_nothing_more(account, churn_survey):
    customer, user, subscription, _ = account
    _, questions = churn_survey

    def confirm():
        form = cancellation_form(customer, answers(questions, nps="5", reason="too_expensive"))
        assert isinstance(form, CancellationSurveyForm) and form.is_valid(), form.errors
        with transaction.atomic():
            portal_subscription_cancel(
                subscription=subscription, form=form, at_period_end=True, prorate=False, acting_user=user
            )

    confirm()
    with pytest.raises(SubscriptionError):
        confirm()

    assert SurveyResponse.objects.count() == 1
