"""The API's middleware lane (config/api/lane.py): /api/v1/ skips the browser-only middleware.

A probe view mounted under /api/v1/ and elsewhere reports what the middleware left on the
request: under the lane no session, no Django user, no htmx details; elsewhere all of them
(the negative control: the probe would see them if the lane let the full chain through).
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from config.api.lane import api_lane_middleware


def probe(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "session": hasattr(request, "session"),
            "user": hasattr(request, "user"),
            "htmx": hasattr(request, "htmx"),
            "language": getattr(request, "LANGUAGE_CODE", None),
        }
    )


urlpatterns = [
    path("api/v1/probe", probe),
    path("probe/", probe),
    path("", include("config.urls")),
]


@pytest.mark.urls("tests.api.test_lane")
def test_api_requests_skip_browser_middleware(client) -> None:
    answer = client.get("/api/v1/probe", HTTP_ACCEPT_LANGUAGE="fr")
    assert answer.json() == {"session": False, "user": False, "htmx": False, "language": "fr"}
    assert "sessionid" not in answer.cookies and "csrftoken" not in answer.cookies
    # What every response needs still runs in the lane: request id, security headers, timing.
    assert answer["X-Request-ID"] and answer["X-Frame-Options"] == "DENY"
    assert answer["X-Content-Type-Options"] == "nosniff" and answer["Server-Timing"].startswith("app;dur=")
    assert "Accept-Language" in answer["Vary"] and answer["Content-Language"] == "fr"


@pytest.mark.urls("tests.api.test_lane")
def test_other_pages_keep_the_full_chain(client) -> None:
    answer = client.get("/probe/")
    assert answer.json()["session"] is True and answer.json()["user"] is True and answer.json()["htmx"] is True
    assert "Content-Security-Policy" in answer


def test_the_lane_keeps_what_is_not_browser_only() -> None:
    lane = api_lane_middleware()
    assert not set(lane) & set(settings.TARIF_BROWSER_ONLY_MIDDLEWARE)
    for needed in (
        "config.api.language.ApiLanguageMiddleware",
        "django.middleware.common.CommonMiddleware",
        "config.ops.middleware.MaintenanceModeMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ):
        assert needed in lane
    # Everything before the lane runs for every request; nothing before it is browser-only.
    before = settings.MIDDLEWARE[: settings.MIDDLEWARE.index("config.api.lane.ApiLaneMiddleware")]
    assert not set(before) & set(settings.TARIF_BROWSER_ONLY_MIDDLEWARE)


def test_api_docs_stay_in_the_browser_chain(client) -> None:
    # /api/docs/ is an HTML page (Swagger UI): it keeps the Content-Security-Policy.
    answer = client.get("/api/docs/")
    assert answer.status_code == 200 and "Content-Security-Policy" in answer


def test_a_key_request_answers_without_cookies(api) -> None:
    answer = api.get("/api/v1/customers")
    assert answer.status_code == 200
    assert not answer.cookies
