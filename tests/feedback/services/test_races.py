"""The feedback services that lock rows, raced by two threads on PostgreSQL."""

from __future__ import annotations

import pytest

from feedback.errors import InvitationLinkError
from feedback.models import Invitation, Question, SurveyResponse, Trigger
from feedback.services import feedback_events_consume, feedback_feature_event_record, invitation_answer, invitation_send
from feedback.services import invitations as invitations_module
from tests.billing.services.test_races import race, slowed
from tests.feedback.conftest import add_question, questions

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_one_link_submitted_twice_at_once_records_one_response(postgres_only, sent_invitation, monkeypatch):
    invitation, token, _customer = sent_invitation()
    nps = questions(invitation.survey)[Question.Kind.NPS]
    slowed(monkeypatch, invitations_module, "survey_response_record")

    results = race(
        lambda: invitation_answer(token=token, answers={nps.pk: 9}),
        lambda: invitation_answer(token=token, answers={nps.pk: 2}),
    )

    assert SurveyResponse.objects.count() == 1
    refused = [result for result in results if isinstance(result, InvitationLinkError)]
    assert [error.code for error in refused] == ["used"]


def test_two_due_invitations_of_one_customer_send_one_email(
    postgres_only, make_customer, make_survey, now, monkeypatch
):
    customer = make_customer()
    for feature in ("export", "import"):
        survey = make_survey(Trigger.FEATURE_USED, feature=feature, name=feature)
        add_question(survey, Question.Kind.NPS, "Recommend us?")
        feedback_feature_event_record(customer=customer, feature=feature)
    feedback_events_consume()
    first, second = Invitation.objects.order_by("pk")
    slowed(monkeypatch, invitations_module, "customer_recently_asked")

    race(lambda: invitation_send(invitation_id=first.pk), lambda: invitation_send(invitation_id=second.pk))

    assert sorted(Invitation.objects.values_list("status", flat=True)) == [
        Invitation.Status.SENT,
        Invitation.Status.THROTTLED,
    ]


def test_two_consumers_at_once_schedule_once(postgres_only, make_customer, make_survey, monkeypatch):
    from feedback.services import triggers

    customer = make_customer()
    survey = make_survey(Trigger.FEATURE_USED, feature="export")
    add_question(survey, Question.Kind.NPS, "Recommend us?")
    feedback_feature_event_record(customer=customer, feature="export")
    slowed(monkeypatch, triggers, "_handle")

    results = race(feedback_events_consume, feedback_events_consume)

    assert sorted(result.events_read for result in results) == [0, 1]
    assert Invitation.objects.count() == 1
