"""A finance user opens every report in a real browser: headline figures, drawn charts, no
console error, nothing wider than 1366 px; the NPS chart's scale reads -100..100."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from feedback.models import Question, Survey, Trigger
from feedback.services import survey_response_record
from tests.browser.steps.reports import open_each_report
from tests.conftest import current_totp
from tests.reports.scenario import build_scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTEFACTS = Path(__file__).resolve().parents[2] / "test-results" / "reports"  # the walk's screenshots


@pytest.fixture
def shots(page: Page):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)

    return shot


def sign_in_finance(page: Page, base_url: str, staff_factory) -> None:
    user = staff_factory(username="camille")
    user.groups.add(Group.objects.get(name="Finance"))
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", "camille")
    page.fill("#id_password", "correct horse battery staple")
    page.locator("#id_password").press("Enter")
    page.fill("#id_otp_token", current_totp(device))
    page.locator("#id_otp_token").press("Enter")
    page.wait_for_url(f"{base_url}/admin/")


def nps_answers(customer) -> None:
    survey = Survey.objects.create(
        name="NPS", title_fr="Votre avis", title_en="Your opinion", trigger=Trigger.SUBSCRIPTION_STARTED
    )
    nps = Question.objects.create(survey=survey, kind=Question.Kind.NPS, text_fr="Recommander ?", text_en="Recommend?")
    for month, score in ((1, 10), (2, 9), (3, 2)):  # NPS 100, 100, then -100
        survey_response_record(
            survey=survey,
            customer=customer,
            answers={nps.pk: score},
            trigger=Trigger.SUBSCRIPTION_STARTED,
            at=datetime(2026, month, 10, 9, tzinfo=UTC),
        )


@pytest.fixture
def reports_data(customer_factory, price_factory, tax_rate):
    scenario = build_scenario(customer_factory, price_factory)
    nps_answers(scenario.alice)
    return scenario


def test_finance_opens_each_report_with_headlines_and_drawn_charts(
    live_server, page: Page, staff_factory, reports_data, shots
):
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in_finance(page, live_server.url, staff_factory)

    titles = open_each_report(page, live_server.url, shots)

    assert "Cohort retention" in titles or "Rétention par cohorte" in titles
    assert len(titles) >= 16  # 14 dashboards, feedback reports, operations


def test_the_nps_chart_reads_minus_100_and_whole_legend_names(live_server, page: Page, staff_factory, reports_data):
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in_finance(page, live_server.url, staff_factory)

    page.goto(f"{live_server.url}/admin/feedback/surveyresponse/reports/?start=2026-01-01&end=2026-04-01")

    expect(page.locator("#canvas-nps-line")).to_have_attribute("data-drawn", "1")
    ticks = page.evaluate(
        "() => Chart.getChart(document.getElementById('canvas-nps-line')).scales.y.ticks.map(t => t.label)"
    )
    legend = page.evaluate(
        "() => Chart.getChart(document.getElementById('canvas-nps-mix')).legend.legendItems.map(i => i.text)"
    )
    # The lowest mark is minus one hundred (the old SVG chart printed "100" there).
    assert ticks[0].replace("\u2212", "-").replace("\u202f", "").replace("\xa0", "") == "-100", ticks
    assert ticks[-1] == "100"
    assert len(legend) == 3 and all(label.endswith(")") for label in legend), legend  # "Promoters (9-10)", whole
