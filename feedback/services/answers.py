"""Answers checked against their survey: the one place that says what a valid answer is.

The public page's form and the portal's cancellation form both call
`survey_answers_validate`; `survey_response_record` calls it again, so nothing invalid
reaches the database whichever way it comes in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from config.errors import DomainError
from feedback.models import Question, Survey

NPS_RANGE = (0, 10)
CSAT_RANGE = (1, 5)
TEXT_MAX_LENGTH = 5000


class SurveyAnswerError(DomainError):
    """Answers that do not fit the survey; `errors` maps question ids to messages."""

    def __init__(self, errors: Mapping[int, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(self.errors.values()))


@dataclass(frozen=True, slots=True)
class AnswerData:
    question: Question
    score: int | None = None
    choice_ids: tuple[int, ...] = field(default_factory=tuple)
    text: str = ""


def _empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple | set) and not value)


def _score(question: Question, value: Any) -> int:
    low, high = NPS_RANGE if question.kind == Question.Kind.NPS else CSAT_RANGE
    try:
        score = int(value)
    except (TypeError, ValueError):
        raise ValueError(_("Choose a score from %(low)d to %(high)d.") % {"low": low, "high": high}) from None
    if str(score) != str(value).strip() or not low <= score <= high:
        raise ValueError(_("Choose a score from %(low)d to %(high)d.") % {"low": low, "high": high})
    return score


def _choice_ids(question: Question, value: Any) -> tuple[int, ...]:
    values = value if isinstance(value, list | tuple | set) else [value]
    if question.kind == Question.Kind.SINGLE and len(values) != 1:
        raise ValueError(_("Choose one answer."))
    by_code = {choice.code: choice.pk for choice in question.choices.all()}
    by_id = {str(pk): pk for pk in by_code.values()}
    chosen = []
    for item in values:
        key = str(item)
        if key in by_code:
            chosen.append(by_code[key])
        elif key in by_id:
            chosen.append(by_id[key])
        else:
            raise ValueError(_("'%(value)s' is not one of the proposed answers.") % {"value": key})
    return tuple(dict.fromkeys(chosen))


def survey_answers_validate(*, survey: Survey, answers: Mapping[int, object]) -> list[AnswerData]:
    """`answers` maps question ids to a score (NPS, CSAT), a choice code or id (single),
    a list of them (multiple) or a text. Raises SurveyAnswerError naming every problem."""
    questions = list(survey.questions.prefetch_related("choices").order_by("position", "pk"))
    known = {question.pk for question in questions}
    errors: dict[int, str] = {}
    unknown = [key for key in answers if key not in known]
    for key in unknown:
        errors[key] = _("Question %(id)s is not part of this survey.") % {"id": key}
    result = []
    for question in questions:
        value = answers.get(question.pk)
        if isinstance(value, str):
            value = value.strip()
        if _empty(value):
            if question.required:
                errors[question.pk] = _("This question needs an answer.")
            continue
        try:
            if question.kind in (Question.Kind.NPS, Question.Kind.CSAT):
                result.append(AnswerData(question=question, score=_score(question, value)))
            elif question.has_choices:
                result.append(AnswerData(question=question, choice_ids=_choice_ids(question, value)))
            else:
                text = str(value)
                if len(text) > TEXT_MAX_LENGTH:
                    raise ValueError(_("Keep the answer under %(max)d characters.") % {"max": TEXT_MAX_LENGTH})
                result.append(AnswerData(question=question, text=text))
        except ValueError as error:
            errors[question.pk] = str(error)
    if errors:
        raise SurveyAnswerError(errors)
    return result
