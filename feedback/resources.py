"""Export of survey responses (django-import-export): one row per response, answers as text."""

from __future__ import annotations

from typing import Any

from import_export import fields, resources

from feedback.models import Question, SurveyResponse


def answer_text(answer: Any, language: str = "fr") -> str:
    if answer.question.kind in (Question.Kind.NPS, Question.Kind.CSAT):
        return "" if answer.score is None else str(answer.score)
    if answer.question.has_choices:
        return ", ".join(choice.label(language) for choice in answer.choices.all())
    return answer.text


class SurveyResponseResource(resources.ModelResource):
    customer = fields.Field(attribute="customer__legal_name", column_name="customer")
    customer_id = fields.Field(attribute="customer_id", column_name="customer_id")
    survey = fields.Field(attribute="survey__name", column_name="survey")
    answers = fields.Field(column_name="answers")
    nps = fields.Field(column_name="nps")
    csat = fields.Field(column_name="csat")

    class Meta:
        model = SurveyResponse
        fields = (
            "id",
            "submitted_at",
            "customer_id",
            "customer",
            "survey",
            "trigger",
            "language",
            "nps",
            "csat",
            "answers",
        )
        export_order = fields

    def get_queryset(self) -> Any:
        return SurveyResponse.objects.select_related("customer", "survey").prefetch_related(
            "answers__question", "answers__choices"
        )

    def _score(self, response: SurveyResponse, kind: str) -> str:
        scores = [str(a.score) for a in response.answers.all() if a.question.kind == kind and a.score is not None]
        return ", ".join(scores)

    def dehydrate_nps(self, response: SurveyResponse) -> str:
        return self._score(response, Question.Kind.NPS)

    def dehydrate_csat(self, response: SurveyResponse) -> str:
        return self._score(response, Question.Kind.CSAT)

    def dehydrate_answers(self, response: SurveyResponse) -> str:
        return "\n".join(
            f"{answer.question.text(response.language)}: {answer_text(answer, response.language)}"
            for answer in response.answers.all()
        )
