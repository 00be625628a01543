"""Feedback in the operator console, for the finance and read-only roles."""

from __future__ import annotations

import html
import json
import re

import pytest
import tablib
from django.contrib.auth.models import Group
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from feedback.models import Question, Survey, Trigger
from feedback.services import survey_response_record
from tests.conftest import current_totp
from tests.feedback.conftest import T0, questions

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def signed_in(client, staff_factory):
    def sign_in(role: str):
        user = staff_factory(username=role.lower().replace("-", ""))
        user.groups.add(Group.objects.get(name=role))
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
        assert client.post("/admin/otp/verify/", {"otp_token": current_totp(device)}).status_code == 302
        return client

    return sign_in


@pytest.fixture
def answered(nps_survey, cancellation_survey, make_customer):
    customer = make_customer(legal_name="Fromagerie Dubois")
    ids, churn = questions(nps_survey), questions(cancellation_survey)
    for score, csat in ((10, 5), (3, 2), (8, 4)):
        survey_response_record(
            survey=nps_survey,
            customer=customer,
            answers={ids["nps"].pk: score, ids["csat"].pk: csat},
            trigger=Trigger.SUBSCRIPTION_STARTED,
            at=T0,
        )
    survey_response_record(
        survey=cancellation_survey,
        customer=customer,
        answers={churn["single"].pk: "too_expensive", churn["text"].pk: "La facturation SEPA manquait"},
        trigger=Trigger.CANCELLATION,
        at=T0,
    )
    return customer


@pytest.mark.parametrize("role", ["Finance", "Read-only"])
def test_every_feedback_page_renders_for_both_roles(signed_in, answered, role):
    client = signed_in(role)
    response_id = answered.survey_responses.first().pk
    survey_id = Survey.objects.first().pk
    pages = [
        reverse("admin:feedback_survey_changelist"),
        reverse("admin:feedback_survey_change", args=[survey_id]),
        reverse("admin:feedback_question_changelist"),
        reverse("admin:feedback_invitation_changelist"),
        reverse("admin:feedback_surveyresponse_changelist"),
        reverse("admin:feedback_surveyresponse_change", args=[response_id]),
        reverse("admin:feedback_surveyresponse_reports"),
    ]
    for page in pages:
        assert client.get(page).status_code == 200, page
    # The survey trigger's event cursor is plumbing: superusers only (config.admin_site.is_plumbing).
    assert client.get(reverse("admin:events_eventcursor_changelist")).status_code == 403


def test_finance_builds_a_survey_with_its_questions(signed_in):
    client = signed_in("Finance")
    form = {
        "name": "Satisfaction J+7",
        "title_fr": "Êtes-vous satisfait ?",
        "title_en": "Are you satisfied?",
        "intro_fr": "",
        "intro_en": "",
        "trigger": Trigger.SUBSCRIPTION_STARTED,
        "delay_days": "7",
        "feature": "",
        "throttle_scope": Survey.ThrottleScope.GLOBAL,
        "throttle_days": "",
        "active": "on",
        "position": "0",
        "questions-TOTAL_FORMS": "1",
        "questions-INITIAL_FORMS": "0",
        "questions-0-position": "0",
        "questions-0-kind": Question.Kind.CSAT,
        "questions-0-text_fr": "Votre satisfaction ?",
        "questions-0-text_en": "Your satisfaction?",
        "questions-0-required": "on",
    }

    response = client.post(reverse("admin:feedback_survey_add"), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    survey = Survey.objects.get(name="Satisfaction J+7")
    assert survey.delay_days == 7 and survey.questions.get().kind == Question.Kind.CSAT


def test_a_feature_survey_needs_its_feature_key(signed_in):
    client = signed_in("Finance")
    response = client.post(
        reverse("admin:feedback_survey_add"),
        {
            "name": "Export",
            "title_fr": "Export",
            "title_en": "Export",
            "trigger": Trigger.FEATURE_USED,
            "delay_days": "0",
            "feature": "",
            "throttle_scope": "global",
            "position": "0",
            "questions-TOTAL_FORMS": "0",
            "questions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "needs the feature key" in response.content.decode()
    assert not Survey.objects.exists()


def test_read_only_staff_cannot_change_surveys_or_import(signed_in, nps_survey):
    client = signed_in("Read-only")

    assert client.get(reverse("admin:feedback_survey_add")).status_code == 403
    assert client.post(reverse("admin:feedback_survey_change", args=[nps_survey.pk]), {"name": "x"}).status_code == 403
    listing = client.get(reverse("admin:feedback_surveyresponse_changelist")).content.decode()
    assert "/admin/feedback/surveyresponse/export/" in listing and "import/" not in listing


def test_responses_are_searchable_by_free_text(signed_in, answered):
    client = signed_in("Read-only")

    page = client.get(reverse("admin:feedback_surveyresponse_changelist"), {"q": "SEPA"}).content.decode()
    none = client.get(reverse("admin:feedback_surveyresponse_changelist"), {"q": "introuvable"}).content.decode()

    assert "La facturation SEPA manquait" in page and page.count("Fromagerie Dubois") >= 1
    assert "1 result" in page or "1 résultat" in page  # unfold's header: "1 result (4 total)"
    assert "Fromagerie Dubois</a>" not in none


def test_responses_export_with_their_answers(signed_in, answered):
    client = signed_in("Read-only")

    response = client.post(
        reverse("admin:feedback_surveyresponse_export"),
        {
            "format": "0",
            "resource": "0",
            **{f"surveyresponseresource_{f}": "on" for f in ("id", "customer", "survey", "nps", "csat", "answers")},
        },
    )

    assert response.status_code == 200
    data = tablib.Dataset().load(response.content.decode("utf-8-sig"), format="csv")
    assert len(data) == 4
    assert sorted(filter(None, data["nps"])) == ["10", "3", "8"]
    assert any("Trop cher" in answers for answers in data["answers"])


def _charts(page: str) -> dict[str, dict]:
    """The chart specs the page hands to static/tarif/admin/reports.js (json_script, no inline script)."""
    found = re.findall(r'<script id="([\w-]+)" type="application/json">(.*?)</script>', page, re.S)
    return {chart_id: json.loads(html.unescape(data)) for chart_id, data in found}


def test_the_reports_page_shows_nps_and_answer_counts_first_then_charts(signed_in, answered):
    client = signed_in("Finance")

    page = client.get(reverse("admin:feedback_surveyresponse_reports")).content.decode()

    # 1 promoter (10), 1 passive (8), 1 detractor (3): NPS 0; CSAT 5, 2, 4: 3.67
    headlines = page.split('id="report-headlines"', 1)[1].split("tarif-charts", 1)[0]
    assert re.search(r'tarif-headline-label">NPS</p>\s*<p class="tarif-headline-value">0</p>', headlines)
    assert re.search(r'tarif-headline-label">NPS answers</p>\s*<p class="tarif-headline-value">3</p>', headlines)
    assert "3.67 / 5" in headlines
    assert page.index('id="report-headlines"') < page.index('class="tarif-chart"')
    charts = _charts(page)
    assert set(charts) == {"nps-mix", "nps-line", "csat-chart", "churn-chart"}
    assert "<svg" not in page.split('id="content-main"', 1)[1]
    assert "Too expensive" in charts["churn-chart"]["labels"]
    mix = charts["nps-mix"]
    assert [dataset["data"] for dataset in mix["datasets"]] == [[33.3], [33.3], [33.3]]


def test_the_nps_chart_runs_from_minus_100_with_whole_legend_names(signed_in, answered):
    client = signed_in("Finance")

    charts = _charts(client.get(reverse("admin:feedback_surveyresponse_reports")).content.decode())

    # The scale is fixed at -100..100 (the old SVG printed the -100 mark as "100"); the browser
    # formats the ticks (tests/browser/test_reports.py reads them off the drawn chart).
    line = charts["nps-line"]
    assert (line["y_min"], line["y_max"]) == (-100, 100)
    assert line["y_label"] == "NPS (-100 to 100)" and line["x_label"] == "month"
    # Legend names are whole series names (the old SVG cut "Promoters" to "Promot").
    assert [dataset["label"] for dataset in charts["nps-mix"]["datasets"]] == [
        "Detractors (0-6)",
        "Passives (7-8)",
        "Promoters (9-10)",
    ]
    assert charts["nps-mix"]["stacked"] and charts["nps-mix"]["y_max"] == 100


def test_the_reports_filters_refuse_an_inverted_period(signed_in, answered):
    client = signed_in("Finance")

    page = client.get(
        reverse("admin:feedback_surveyresponse_reports"), {"start": "2026-04-01", "end": "2026-03-01"}
    ).content.decode()

    assert "errornote" in page


def test_a_choice_question_without_choices_is_pointed_out(signed_in):
    client = signed_in("Finance")
    form = {
        "name": "Churn",
        "title_fr": "Pourquoi ?",
        "title_en": "Why?",
        "trigger": Trigger.CANCELLATION,
        "delay_days": "0",
        "throttle_scope": "global",
        "active": "on",
        "position": "0",
        "questions-TOTAL_FORMS": "1",
        "questions-INITIAL_FORMS": "0",
        "questions-0-position": "0",
        "questions-0-kind": Question.Kind.SINGLE,
        "questions-0-text_fr": "Raison principale",
        "questions-0-text_en": "Main reason",
        "questions-0-required": "on",
    }

    page = client.post(reverse("admin:feedback_survey_add"), form, follow=True).content.decode()

    assert "Raison principale” needs at least two choices" in page
