"""The demo surveys give the reports something to show, once."""

from __future__ import annotations

import pytest

from feedback.demo import feedback_demo_seed
from feedback.models import Survey, SurveyResponse
from feedback.selectors import churn_reasons, nps_summary
from feedback.services import cancellation_survey_for

pytestmark = pytest.mark.django_db


def test_the_demo_surveys_and_answers_are_created_once(make_customer):
    customers = [make_customer(), make_customer(preferred_language="en")]

    assert feedback_demo_seed(customers=customers) == 8
    assert feedback_demo_seed(customers=customers) == 0

    assert Survey.objects.count() == 2 and SurveyResponse.objects.count() == 8
    assert cancellation_survey_for(customer=customers[0]).name == "Résiliation"
    # NPS answers 9, 6, 10, 8, 3: 2 promoters, 1 passive, 2 detractors -> 0
    assert nps_summary().score == 0
    assert churn_reasons()[0].code == "too_expensive" and churn_reasons()[0].count == 2
