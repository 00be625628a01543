"""The survey as a Django form, in one language: the public page and the portal's
cancellation step both render it. Validation is the service's (survey_answers_validate)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from feedback.models import LANGUAGES, Question, Survey
from feedback.services.answers import TEXT_MAX_LENGTH, SurveyAnswerError, survey_answers_validate


def _field_name(question: Question) -> str:
    return f"q_{question.pk}"


class SurveyResponseForm(forms.Form):
    """`SurveyResponseForm(survey=..., language="fr"|"en", data=request.POST if request.method == "POST" else None)`.

    After is_valid(), `answers` maps question ids to values ready for
    `survey_response_record(..., answers=form.answers)`."""

    def __init__(self, *args: Any, survey: Survey, language: str, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"survey{survey.pk}_%s")
        super().__init__(*args, **kwargs)
        self.survey = survey
        self.language = language if language in LANGUAGES else "fr"
        self.questions = list(survey.questions.prefetch_related("choices").order_by("position", "pk"))
        with translation.override(self.language):
            for question in self.questions:
                self.fields[_field_name(question)] = self._field(question)
        self.answers: dict[int, Any] = {}

    def _field(self, question: Question) -> forms.Field:
        label = question.text(self.language)
        required = question.required
        if question.kind in (Question.Kind.NPS, Question.Kind.CSAT):
            low, high = (0, 10) if question.kind == Question.Kind.NPS else (1, 5)
            field: forms.Field = forms.TypedChoiceField(
                label=label,
                required=required,
                coerce=int,
                choices=[(score, str(score)) for score in range(low, high + 1)],
                widget=forms.RadioSelect,  # drawn as a row of buttons by the template
            )
            field.scale_low = str(
                _("Not at all likely") if question.kind == Question.Kind.NPS else _("Very dissatisfied")
            )
            field.scale_high = str(_("Extremely likely") if question.kind == Question.Kind.NPS else _("Very satisfied"))
            return field
        choices = [(choice.code, choice.label(self.language)) for choice in question.choices.all()]
        if question.kind == Question.Kind.SINGLE:
            return forms.ChoiceField(label=label, required=required, choices=choices, widget=forms.RadioSelect)
        if question.kind == Question.Kind.MULTIPLE:
            return forms.MultipleChoiceField(
                label=label, required=required, choices=choices, widget=forms.CheckboxSelectMultiple
            )
        return forms.CharField(
            label=label,
            required=required,
            max_length=TEXT_MAX_LENGTH,
            widget=forms.Textarea(attrs={"rows": 4}),
        )

    def full_clean(self) -> None:
        # Error messages in the survey's language, whatever the request's language is.
        with translation.override(self.language):
            super().full_clean()
            # Field messages are lazy: render them now, while the survey's language is active.
            for name, errors in list(self._errors.items()):
                self._errors[name] = self.error_class([str(message) for message in errors], renderer=self.renderer)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        answers = {
            question.pk: cleaned.get(_field_name(question))
            for question in self.questions
            if _field_name(question) not in self.errors
        }
        try:
            survey_answers_validate(survey=self.survey, answers=answers)
        except SurveyAnswerError as error:
            for question_id, message in error.errors.items():
                name = f"q_{question_id}"
                if name in self.fields and name not in self.errors:
                    self.add_error(name, message)
        self.answers = answers
        return cleaned
