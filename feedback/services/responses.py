"""Recording a customer's answers (from the public link or the portal's cancellation step)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils.translation import gettext

from billing.models import Subscription
from config import clock
from config.events.log import event_record
from config.types import ActingUser
from customers.models import Customer
from feedback.errors import FeedbackError
from feedback.models import LANGUAGES, Answer, Invitation, Question, Survey, SurveyResponse, Trigger
from feedback.services.answers import survey_answers_validate


def survey_language_for(*, customer: Customer) -> str:
    """Surveys speak the customer's preferred language (French when it is neither)."""
    language = getattr(customer, "preferred_language", "") or "fr"
    return language if language in LANGUAGES else "fr"


def cancellation_survey_for(*, customer: Customer) -> Survey | None:
    """The survey the portal shows before a cancellation is confirmed, if staff set one up.

    Not throttled: the customer asked to leave, this is the one moment to ask why."""
    del customer  # one cancellation survey for everyone today; the signature leaves room for targeting
    return (
        Survey.objects.filter(active=True, trigger=Trigger.CANCELLATION, questions__isnull=False)
        .distinct()
        .order_by("position", "pk")
        .first()
    )


@transaction.atomic(savepoint=False)
def survey_response_record(
    *,
    survey: Survey,
    customer: Customer,
    answers: Mapping[int, object],
    trigger: str,
    invitation: Invitation | None = None,
    subscription: Subscription | None = None,
    language: str | None = None,
    at: datetime | None = None,
    acting_user: ActingUser = None,
) -> SurveyResponse:
    """Store validated answers for `customer` and append `feedback.response_received`.

    Raises SurveyAnswerError when the answers do not fit the survey. Callers answering
    through an invitation go through `invitation_answer`, which checks the link first."""
    if invitation is not None and (invitation.customer_id != customer.pk or invitation.survey_id != survey.pk):
        raise FeedbackError(gettext("The invitation belongs to another customer or survey."))
    if subscription is not None and subscription.customer_id != customer.pk:
        raise FeedbackError(gettext("The subscription belongs to another customer."))
    validated = survey_answers_validate(survey=survey, answers=answers)
    at = at or clock.now(customer=customer)
    language = language if language in LANGUAGES else survey_language_for(customer=customer)
    response = SurveyResponse.objects.create(
        survey=survey,
        customer=customer,
        invitation=invitation,
        subscription=subscription,
        trigger=trigger,
        language=language,
        submitted_at=at,
        acting_user=acting_user if getattr(acting_user, "is_authenticated", False) else None,
    )
    for item in validated:
        answer = Answer.objects.create(response=response, question=item.question, score=item.score, text=item.text)
        if item.choice_ids:
            answer.choices.set(item.choice_ids)
    event_record(
        type="feedback.response_received",
        object_type="survey_response",
        object_id=response.pk,
        customer_id=customer.pk,
        occurred_at=at,
        data={
            "survey": survey.pk,
            "survey_name": survey.name,
            "trigger": trigger,
            "invitation": invitation.pk if invitation else None,
            "subscription": subscription.pk if subscription is not None else None,
            "answers": [_answer_json(item) for item in validated],
        },
        acting_user=acting_user,
    )
    return response


def _answer_json(item: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"question": item.question.pk, "kind": item.question.kind}
    if item.question.kind in (Question.Kind.NPS, Question.Kind.CSAT):
        data["score"] = item.score
    elif item.question.has_choices:
        codes = {choice.pk: choice.code for choice in item.question.choices.all()}
        data["choices"] = [codes[pk] for pk in item.choice_ids]
    else:
        data["text"] = item.text
    return data
