"""Report figures on answers worked out by hand, and a customer's answers for the timeline."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from feedback.models import SurveyResponse, Trigger
from feedback.selectors import (
    churn_reasons,
    csat_summary,
    nps_over_time,
    nps_summary,
    responses_matching_text,
    survey_responses_for_customer,
)
from feedback.services import survey_response_record
from tests.feedback.conftest import T0, questions

pytestmark = pytest.mark.django_db


def respond(survey, customer, at, **by_kind):
    ids = questions(survey)
    return survey_response_record(
        survey=survey,
        customer=customer,
        answers={ids[kind].pk: value for kind, value in by_kind.items()},
        trigger=survey.trigger,
        at=at,
    )


def test_nps_per_month_and_overall(nps_survey, make_customer):
    customer = make_customer()
    march, april = T0, T0 + timedelta(days=31)
    # March: 10, 9, 8, 6, 0 -> 2 promoters, 1 passive, 2 detractors: (2-2)/5 = 0
    for score in (10, 9, 8, 6, 0):
        respond(nps_survey, customer, march, nps=score)
    # April: 9, 9, 9, 7 -> 3 promoters, 1 passive: 75
    for score in (9, 9, 9, 7):
        respond(nps_survey, customer, april, nps=score)

    months = nps_over_time()
    overall = nps_summary()

    assert [(p.month.strftime("%Y-%m"), p.promoters, p.passives, p.detractors, p.score) for p in months] == [
        ("2026-03", 2, 1, 2, 0),
        ("2026-04", 3, 1, 0, 75),
    ]
    # 5 promoters, 2 passives, 2 detractors of 9: 300/9 = 33.3 -> 33
    assert (overall.total, overall.score) == (9, 33)
    assert nps_summary(start=april).score == 75
    assert nps_summary(end=april).score == 0
    assert nps_summary(start=april + timedelta(days=60)).score is None


def test_nps_rounds_half_up(nps_survey, make_customer):
    customer = make_customer()
    # 1 promoter, 7 passives: 100/8 = 12.5 -> 13
    for score in (10, 7, 7, 7, 7, 8, 8, 8):
        respond(nps_survey, customer, T0, nps=score)
    assert nps_summary().score == 13


def test_csat_average_and_distribution(nps_survey, make_customer):
    customer = make_customer()
    for csat in (5, 4, 4, 2, 1, 5):
        respond(nps_survey, customer, T0, nps=9, csat=csat)
    respond(nps_survey, customer, T0, nps=9)  # CSAT left empty: not counted

    summary = csat_summary()

    assert summary.responses == 6
    assert summary.average == Decimal("3.50")  # 21 / 6
    assert summary.distribution == {1: 1, 2: 1, 3: 0, 4: 2, 5: 2}
    assert summary.satisfied_percent == 67  # 4 of 6
    assert csat_summary(start=T0 + timedelta(days=1)).average is None


def test_churn_reason_breakdown(cancellation_survey, make_customer):
    customer = make_customer()
    for reason in ("too_expensive", "too_expensive", "switching", "too_expensive"):
        respond(cancellation_survey, customer, T0, single=reason)

    reasons = churn_reasons()

    assert [(r.code, r.count) for r in reasons] == [("too_expensive", 3), ("switching", 1), ("missing_feature", 0)]
    assert reasons[0].label("fr") == "Trop cher" and reasons[0].label("en") == "Too expensive"
    assert [r.count for r in churn_reasons(start=T0 + timedelta(days=1))] == [0, 0, 0]


def test_a_customers_responses_in_order_for_the_timeline(nps_survey, cancellation_survey, make_customer):
    customer, other = make_customer(), make_customer()
    later = respond(cancellation_survey, customer, T0 + timedelta(days=40), single="switching", text="Trop lent")
    first = respond(nps_survey, customer, T0, nps=4)
    respond(nps_survey, other, T0, nps=10)

    responses = list(survey_responses_for_customer(customer=customer))

    assert responses == [first, later]
    assert [answer.score for answer in responses[0].answers.all()] == [4]
    assert responses[1].trigger == Trigger.CANCELLATION


def test_free_text_search(cancellation_survey, make_customer):
    customer = make_customer()
    slow = respond(cancellation_survey, customer, T0, single="switching", text="L'export comptable est trop lent")
    respond(cancellation_survey, customer, T0, single="too_expensive", text="Le prix a doublé")

    found = responses_matching_text(queryset=SurveyResponse.objects.all(), text="export comptable")

    assert list(found) == [slow]
    assert not responses_matching_text(queryset=SurveyResponse.objects.all(), text="facturation").exists()


def test_full_text_search_matches_word_forms_on_postgresql(postgres_only, cancellation_survey, make_customer):
    customer = make_customer()
    response = respond(cancellation_survey, customer, T0, single="switching", text="Les exports étaient lents")

    assert list(responses_matching_text(queryset=SurveyResponse.objects.all(), text="export lent")) == [response]
