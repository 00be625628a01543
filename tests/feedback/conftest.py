"""Fixtures for feedback: surveys built like staff build them, and an invitation already sent."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.core import mail

from feedback.models import Choice, Invitation, Question, Survey, Trigger
from feedback.services import feedback_events_consume, feedback_invitations_send_due, survey_invite
from tests.billing.services.conftest import billing_brand, make_customer, make_price  # noqa: F401

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_event_lag(settings):
    # Tests write events and read them at once; production waits TARIF_FEEDBACK_EVENT_LAG_SECONDS.
    settings.TARIF_FEEDBACK_EVENT_LAG_SECONDS = 0
    settings.TARIF_FEEDBACK_THROTTLE_DAYS = 30
    settings.TARIF_FEEDBACK_LINK_DAYS = 14


@pytest.fixture
def now():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def add_question(survey: Survey, kind: str, text: str, *, required: bool = True, choices=()) -> Question:
    question = Question.objects.create(
        survey=survey,
        kind=kind,
        text_fr=f"{text} (fr)",
        text_en=f"{text} (en)",
        required=required,
        position=survey.questions.count(),
    )
    for position, (code, label_fr, label_en) in enumerate(choices):
        Choice.objects.create(question=question, code=code, label_fr=label_fr, label_en=label_en, position=position)
    return question


CHURN_CHOICES = (
    ("too_expensive", "Trop cher", "Too expensive"),
    ("missing_feature", "Il manque une fonction", "A feature is missing"),
    ("switching", "Nous changeons d'outil", "Switching to another tool"),
)


@pytest.fixture
def make_survey(db):
    def make(trigger: str = Trigger.MANUAL, **fields) -> Survey:
        return Survey.objects.create(
            name=fields.pop("name", f"{trigger} survey"),
            title_fr=fields.pop("title_fr", "Votre avis compte"),
            title_en=fields.pop("title_en", "Your opinion matters"),
            trigger=trigger,
            **fields,
        )

    return make


@pytest.fixture
def nps_survey(make_survey):
    """NPS (required), CSAT (optional), a multiple choice (optional), free text (optional)."""
    survey = make_survey(Trigger.SUBSCRIPTION_STARTED, name="NPS J+30", delay_days=30)
    add_question(survey, Question.Kind.NPS, "Recommend us?")
    add_question(survey, Question.Kind.CSAT, "Satisfied?", required=False)
    add_question(
        survey,
        Question.Kind.MULTIPLE,
        "What do you use?",
        required=False,
        choices=(("invoices", "Factures", "Invoices"), ("reports", "Rapports", "Reports")),
    )
    add_question(survey, Question.Kind.TEXT, "Anything else?", required=False)
    return survey


@pytest.fixture
def cancellation_survey(make_survey):
    survey = make_survey(Trigger.CANCELLATION, name="Churn", title_fr="Pourquoi partez-vous ?", title_en="Why leave?")
    add_question(survey, Question.Kind.SINGLE, "Main reason", choices=CHURN_CHOICES)
    add_question(survey, Question.Kind.TEXT, "Tell us more", required=False)
    return survey


def questions(survey: Survey) -> dict[str, Question]:
    return {question.kind: question for question in survey.questions.all()}


def link_token(message) -> str:
    match = re.search(r"/feedback/s/([^/\s]+)/", message.body)
    assert match, "the invitation email should contain the survey link"
    return match.group(1)


def process() -> None:
    """What the beat task does: read events, then send what is due."""
    feedback_events_consume()
    feedback_invitations_send_due()


@pytest.fixture
def sent_invitation(make_customer, make_survey, now):  # noqa: F811
    """(invitation, token, customer): a manual survey invitation emailed just now."""

    def make(customer=None, survey=None):
        customer = customer or make_customer(preferred_language="fr")
        if survey is None:
            survey = make_survey(Trigger.MANUAL)
            add_question(survey, Question.Kind.NPS, "Recommend us?")
            add_question(survey, Question.Kind.TEXT, "Why?", required=False)
        invitation = survey_invite(survey=survey, customer=customer, key="test", at=T0)
        mail.outbox.clear()
        feedback_invitations_send_due()
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.SENT
        return invitation, link_token(mail.outbox[-1]), customer

    return make
