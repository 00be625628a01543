"""Demo surveys for `manage.py seed_demo`: a cancellation survey and an NPS survey with a
few answers, so the console's feedback reports have something to show. Idempotent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from feedback.models import Choice, Question, Survey, SurveyResponse, Trigger
from feedback.services import survey_response_record

CHURN_REASONS = (
    ("too_expensive", "Trop cher", "Too expensive"),
    ("missing_feature", "Il manque une fonctionnalité", "A feature is missing"),
    ("switching", "Nous passons à un autre outil", "Switching to another tool"),
    ("closing", "Nous cessons notre activité", "We are closing down"),
)
# (days ago, NPS, CSAT, comment)
NPS_ANSWERS = (
    (75, 9, 5, "Les factures Factur-X nous font gagner du temps."),
    (60, 6, 3, "L'export comptable pourrait être plus simple."),
    (40, 10, 5, ""),
    (20, 8, 4, "Clear invoices, quick support."),
    (5, 3, 2, "Le prélèvement SEPA a échoué deux fois."),
)


def _question(survey: Survey, position: int, kind: str, fr: str, en: str, *, required: bool = True) -> Question:
    question, _ = Question.objects.get_or_create(
        survey=survey, position=position, defaults={"kind": kind, "text_fr": fr, "text_en": en, "required": required}
    )
    return question


@transaction.atomic
def feedback_demo_seed(*, customers: Sequence[Any]) -> int:
    """Create the demo surveys (once) and their answers (once); returns the responses created."""
    churn, _ = Survey.objects.get_or_create(
        name="Résiliation",
        defaults={
            "title_fr": "Avant de partir…",
            "title_en": "Before you go…",
            "intro_fr": "Dites-nous pourquoi vous résiliez : cela nous aide à progresser.",
            "intro_en": "Tell us why you are cancelling: it helps us improve.",
            "trigger": Trigger.CANCELLATION,
        },
    )
    reason = _question(churn, 0, Question.Kind.SINGLE, "Pourquoi résiliez-vous ?", "Why are you cancelling?")
    for position, (code, fr, en) in enumerate(CHURN_REASONS):
        Choice.objects.get_or_create(
            question=reason, code=code, defaults={"position": position, "label_fr": fr, "label_en": en}
        )
    churn_comment = _question(churn, 1, Question.Kind.TEXT, "Un mot de plus ?", "Anything else?", required=False)
    nps, _ = Survey.objects.get_or_create(
        name="NPS à 30 jours",
        defaults={
            "title_fr": "Recommanderiez-vous nos services ?",
            "title_en": "Would you recommend us?",
            "trigger": Trigger.SUBSCRIPTION_STARTED,
            "delay_days": 30,
            "position": 1,
        },
    )
    score = _question(
        nps,
        0,
        Question.Kind.NPS,
        "Quelle est la probabilité que vous nous recommandiez à un confrère ?",
        "How likely are you to recommend us to a colleague?",
    )
    csat = _question(
        nps, 1, Question.Kind.CSAT, "Êtes-vous satisfait de la facturation ?", "How satisfied are you with billing?"
    )
    comment = _question(nps, 2, Question.Kind.TEXT, "Pourquoi ?", "Why?", required=False)
    if SurveyResponse.objects.filter(survey__in=(churn, nps)).exists() or not customers:
        return 0
    now = timezone.now()
    created = 0
    for index, (days_ago, nps_score, csat_score, text) in enumerate(NPS_ANSWERS):
        customer = customers[index % len(customers)]
        survey_response_record(
            survey=nps,
            customer=customer,
            answers={score.pk: nps_score, csat.pk: csat_score, comment.pk: text},
            trigger=Trigger.SUBSCRIPTION_STARTED,
            at=now - timedelta(days=days_ago),
        )
        created += 1
    for index, code in enumerate(("too_expensive", "switching", "too_expensive")):
        customer = customers[(index + 1) % len(customers)]
        survey_response_record(
            survey=churn,
            customer=customer,
            answers={reason.pk: code, churn_comment.pk: "Budget réduit cette année." if index == 0 else ""},
            trigger=Trigger.CANCELLATION,
            at=now - timedelta(days=30 - index * 10),
        )
        created += 1
    return created
