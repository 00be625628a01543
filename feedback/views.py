"""The public survey page, opened from an invitation email without signing in."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from feedback.errors import InvitationLinkError
from feedback.forms import SurveyResponseForm
from feedback.models import LANGUAGES, Invitation
from feedback.services import SurveyAnswerError, invitation_answer, invitation_for_token
from invoices.selectors import NoBrandConfigured, brand_for_customer


def _portal_customer(request: HttpRequest) -> Any:
    """The customer a signed-in portal user acts for: a link for another customer is refused."""
    link = getattr(request.user, "customer_link", None) if request.user.is_authenticated else None
    return link.customer if link is not None else None


def _brand_context(invitation: Invitation | None) -> dict[str, Any]:
    brand = None
    if invitation is not None:
        try:
            brand = brand_for_customer(customer=invitation.customer)
        except NoBrandConfigured:
            brand = None
    return {
        "brand": brand,
        "primary": brand.primary_colour if brand else "#2851a3",
        "accent": brand.accent_colour if brand else "#f0a202",
    }


def _respond(request: HttpRequest, template: str, context: dict[str, Any], *, status: int) -> HttpResponse:
    response = render(request, template, context, status=status)
    # The token is in the URL: keep the page out of search engines and caches.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "no-store"
    return response


def _refused(request: HttpRequest, error: InvitationLinkError, language: str) -> HttpResponse:
    with translation.override(language):
        context = {
            "language": language,
            "message": str(error.MESSAGES[error.code]),
            "code": error.code,
            **_brand_context(None),
        }
        return _respond(request, "feedback/refused.html", context, status=error.status)


@never_cache
@require_http_methods(["GET", "POST"])
def survey_page(request: HttpRequest, token: str) -> HttpResponse:
    requested = request.GET.get("lang")
    portal_customer = _portal_customer(request)
    try:
        invitation = invitation_for_token(token=token, portal_customer=portal_customer)
    except InvitationLinkError as error:
        fallback = requested if requested in LANGUAGES else error.language or translation.get_language()[:2]
        return _refused(request, error, fallback if fallback in LANGUAGES else "fr")
    language = requested if requested in LANGUAGES else invitation.language or "fr"
    with translation.override(language):
        data = request.POST if request.method == "POST" else None  # an empty POST is still a submission
        form = SurveyResponseForm(data, survey=invitation.survey, language=language)
        status = 200
        if request.method == "POST":
            if form.is_valid():
                try:
                    invitation_answer(
                        token=token, answers=form.answers, portal_customer=portal_customer, acting_user=request.user
                    )
                except InvitationLinkError as error:
                    return _refused(request, error, language)
                except SurveyAnswerError as error:
                    for question_id, message in error.errors.items():
                        if f"q_{question_id}" in form.fields:
                            form.add_error(f"q_{question_id}", message)
                else:
                    context = {"language": language, "survey": invitation.survey, **_brand_context(invitation)}
                    context["title"] = invitation.survey.title(language)
                    return _respond(request, "feedback/thanks.html", context, status=200)
            status = 400
        context = {
            "language": language,
            "other_language": "en" if language == "fr" else "fr",
            "form": form,
            "survey": invitation.survey,
            "title": invitation.survey.title(language),
            "intro": invitation.survey.intro(language),
            "customer": invitation.customer,
            **_brand_context(invitation),
        }
        return _respond(request, "feedback/survey.html", context, status=status)
