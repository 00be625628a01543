"""The survey form and the answer rules behind it, for each kind of question."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import translation

from config.events.models import DomainEvent
from feedback.errors import FeedbackError
from feedback.forms import SurveyResponseForm
from feedback.models import Question, SurveyResponse, Trigger
from feedback.services import (
    SurveyAnswerError,
    cancellation_survey_for,
    survey_answers_validate,
    survey_response_record,
)
from tests.feedback.conftest import add_question, questions

pytestmark = pytest.mark.django_db


def form_for(survey, language="fr", **data):
    by_kind = questions(survey)
    return SurveyResponseForm(
        {f"q_{by_kind[kind].pk}": value for kind, value in data.items()}, survey=survey, language=language
    )


@pytest.mark.parametrize("score", ["0", "10"])
def test_nps_accepts_0_to_10(nps_survey, score):
    form = form_for(nps_survey, nps=score)
    assert form.is_valid(), form.errors
    assert form.answers[questions(nps_survey)["nps"].pk] == int(score)


@pytest.mark.parametrize("score", ["-1", "11", "7.5", "dix"])
def test_nps_out_of_range_is_refused(nps_survey, score):
    form = form_for(nps_survey, nps=score)
    assert not form.is_valid()
    assert f"q_{questions(nps_survey)['nps'].pk}" in form.errors


@pytest.mark.parametrize(("score", "valid"), [("0", False), ("1", True), ("5", True), ("6", False)])
def test_csat_is_1_to_5(nps_survey, score, valid):
    assert form_for(nps_survey, nps="8", csat=score).is_valid() is valid


def test_a_required_question_must_be_answered_and_says_so_in_the_survey_language(nps_survey):
    with translation.override("en"):
        form = form_for(nps_survey, language="fr", text="Rien à signaler")
        assert not form.is_valid()
    assert form.errors[f"q_{questions(nps_survey)['nps'].pk}"] == ["Ce champ est obligatoire."]


def test_optional_questions_may_stay_empty(nps_survey):
    form = form_for(nps_survey, nps="9", text="   ")
    assert form.is_valid(), form.errors
    assert survey_answers_validate(survey=nps_survey, answers=form.answers)[0].score == 9


def test_unknown_choices_are_refused(nps_survey, cancellation_survey):
    assert not form_for(nps_survey, nps="9", multiple=["invoices", "teleportation"]).is_valid()
    assert not form_for(cancellation_survey, single="bored").is_valid()
    assert form_for(nps_survey, nps="9", multiple=["invoices", "reports"]).is_valid()


def test_the_service_refuses_what_a_form_would(nps_survey, cancellation_survey):
    by_kind = questions(nps_survey)
    reason = questions(cancellation_survey)[Question.Kind.SINGLE]
    with pytest.raises(SurveyAnswerError) as out_of_range:
        survey_answers_validate(survey=nps_survey, answers={by_kind["nps"].pk: 11})
    with pytest.raises(SurveyAnswerError) as missing:
        survey_answers_validate(survey=nps_survey, answers={by_kind["text"].pk: "hello"})
    with pytest.raises(SurveyAnswerError) as two_for_one:
        survey_answers_validate(survey=cancellation_survey, answers={reason.pk: ["too_expensive", "switching"]})
    with pytest.raises(SurveyAnswerError) as foreign:
        survey_answers_validate(survey=cancellation_survey, answers={reason.pk: "switching", by_kind["nps"].pk: 3})
    with pytest.raises(SurveyAnswerError) as boolean:
        survey_answers_validate(survey=nps_survey, answers={by_kind["nps"].pk: True})

    assert list(out_of_range.value.errors) == [by_kind["nps"].pk]
    assert list(missing.value.errors) == [by_kind["nps"].pk]
    assert list(two_for_one.value.errors) == [reason.pk]
    assert list(foreign.value.errors) == [by_kind["nps"].pk]
    assert list(boolean.value.errors) == [by_kind["nps"].pk]


def test_the_form_speaks_the_customers_language(nps_survey):
    form = SurveyResponseForm(survey=nps_survey, language="en")
    html = form.as_div()
    assert "Recommend us? (en)" in html and "Invoices" in html and "Factures" not in html


def test_the_portal_cancellation_flow(cancellation_survey, make_customer, make_survey):
    """What the portal does before confirming a cancellation."""
    customer = make_customer(preferred_language="en")
    draft = make_survey(Trigger.CANCELLATION, name="later", position=0, active=False)
    add_question(draft, Question.Kind.TEXT, "Draft")

    survey = cancellation_survey_for(customer=customer)
    form = form_for(survey, language="en", single="missing_feature", text="Need SEPA")

    assert survey == cancellation_survey
    assert form.is_valid(), form.errors
    response = survey_response_record(
        survey=survey, customer=customer, answers=form.answers, trigger=Trigger.CANCELLATION
    )
    assert response.language == "en"
    assert list(response.answers.get(question__kind="single").choices.values_list("code", flat=True)) == [
        "missing_feature"
    ]
    event = DomainEvent.objects.get(type="feedback.response_received")
    assert event.data["answers"][0] == {
        "question": questions(survey)["single"].pk,
        "kind": "single",
        "choices": ["missing_feature"],
    }


def test_no_cancellation_survey_when_none_is_active(make_customer, make_survey):
    make_survey(Trigger.CANCELLATION, active=False)
    assert cancellation_survey_for(customer=make_customer()) is None


def test_a_response_cannot_be_recorded_on_another_customers_subscription(cancellation_survey, make_customer):
    from billing.models import Subscription

    owner, other = make_customer(), make_customer()
    subscription = Subscription(customer=owner, pk=1)
    reason = questions(cancellation_survey)[Question.Kind.SINGLE]

    with pytest.raises(FeedbackError), transaction.atomic():
        survey_response_record(
            survey=cancellation_survey,
            customer=other,
            answers={reason.pk: "switching"},
            trigger=Trigger.CANCELLATION,
            subscription=subscription,
        )
    assert not SurveyResponse.objects.exists()
