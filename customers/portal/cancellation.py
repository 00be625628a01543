"""The form shown before a customer confirms a cancellation, and the confirmation itself.

When staff set up an active cancellation survey (feedback app), the portal asks it, in
the customer's language; otherwise it asks the plain reason form below. Either form has
a `reason_text()` method giving the short reason stored on the subscription. Confirming
records the survey's answers and cancels in one transaction: invalid answers cancel
nothing. The dependency goes one way: the portal calls the feedback app's public
services, the feedback app knows nothing of the portal.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from billing.models import Subscription
from billing.services.subscriptions import SubscriptionError, subscription_cancel, subscription_lock
from feedback.forms import SurveyResponseForm
from feedback.models import Question, Trigger
from feedback.services import cancellation_survey_for, survey_language_for, survey_response_record

REASON_MAX_LENGTH = 200  # Subscription.cancellation_reason


class CancellationReasonForm(forms.Form):
    REASONS = (
        ("too_expensive", _("It is too expensive")),
        ("missing_features", _("Features I need are missing")),
        ("switched_service", _("I am switching to another service")),
        ("unused", _("I do not use it enough")),
        ("temporary", _("I only needed it for a while")),
        ("other", _("Another reason")),
    )

    reason = forms.ChoiceField(label=_("Why are you canceling?"), choices=REASONS, widget=forms.RadioSelect)
    comment = forms.CharField(
        label=_("Anything you would like to tell us?"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def reason_text(self) -> str:
        text = self.cleaned_data["reason"]
        comment = self.cleaned_data.get("comment", "").strip()
        return f"{text}: {comment}" if comment else text


class CancellationSurveyForm(SurveyResponseForm):
    """The staff's cancellation survey standing in for the reason form."""

    def reason_text(self) -> str:
        """The chosen choice codes (stable, like the reason form's), then the first free text."""
        codes: list[str] = []
        comment = ""
        for question in self.questions:
            value = self.answers.get(question.pk)
            if value in (None, "", []):
                continue
            if question.kind == Question.Kind.SINGLE:
                codes.append(str(value))
            elif question.kind == Question.Kind.MULTIPLE:
                codes.extend(str(code) for code in value)
            elif question.kind == Question.Kind.TEXT and not comment:
                comment = str(value).strip()
        text = ", ".join(codes)
        if comment:
            text = f"{text}: {comment}" if text else comment
        return text[:REASON_MAX_LENGTH]


def cancellation_form(customer: Any, data: Any = None) -> CancellationReasonForm | CancellationSurveyForm:
    """The active cancellation survey's form in the customer's language, else the plain reason form."""
    survey = cancellation_survey_for(customer=customer)
    if survey is None:
        return CancellationReasonForm(data)
    return CancellationSurveyForm(data, survey=survey, language=survey_language_for(customer=customer))


@transaction.atomic(savepoint=False)
def portal_subscription_cancel(
    *,
    subscription: Subscription,
    form: CancellationReasonForm | CancellationSurveyForm,
    at_period_end: bool,
    prorate: bool,
    acting_user: Any = None,
) -> Subscription:
    """Cancel as the customer asked in the portal, with the answers of a validated `form`.

    The survey response (trigger "cancellation", linked to the subscription, which keeps the
    feedback consumer from emailing the same survey) and the cancellation commit together.
    Raises SurveyAnswerError (answers no longer fit the survey) or SubscriptionError; the
    caller's transaction then rolls both back."""
    locked = subscription_lock(subscription)
    # Two clicks on "Confirm" race here: the second finds the first's cancellation and stops.
    if locked.cancel_at_period_end or locked.status == Subscription.Status.CANCELED:
        raise SubscriptionError(_("This subscription is already canceled or set to end."), code="already_canceling")
    if isinstance(form, CancellationSurveyForm):
        survey_response_record(
            survey=form.survey,
            customer=locked.customer,
            answers=form.answers,
            trigger=Trigger.CANCELLATION,
            subscription=locked,
            language=form.language,
            acting_user=acting_user,
        )
    return subscription_cancel(
        subscription=locked,
        at_period_end=at_period_end,
        prorate=prorate,
        reason=form.reason_text(),
        acting_user=acting_user,
    )
