"""The API's own middleware lane: /api/v1/ requests skip the browser-only middleware.

Every API request is authenticated by its key (`Authorization: Bearer`, the only
authentication class, config/settings/api.py) and answered in JSON: sessions, the language
cookie, CSRF, the Django user and its OTP device, messages, allauth, htmx, the session
timeout, the console's audit and django-axes' login lockout have nothing to do there, yet
they cost about a quarter of a short request's server time (bench/entitlements.py, issue 16).

`ApiLaneMiddleware` sits in MIDDLEWARE after what every response needs (request id, metrics,
Server-Timing, security headers). For a path under `TARIF_API_LANE_PREFIX` it hands the
request to a second chain built once from the middleware that follow it minus
`TARIF_BROWSER_ONLY_MIDDLEWARE`; every other request goes down the full chain unchanged.
The lane's chain is a Django `BaseHandler` chain of its own, so its view, template-response
and exception hooks are those of its own middleware, ending in the same URL resolution and
view call. The test client, the live server and gunicorn all go through it: the API tests
exercise the lane the integrators get.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponseBase

_SELF = f"{__name__}.ApiLaneMiddleware"
# Building a chain reads settings.MIDDLEWARE; it is swapped for the lane's list while one is
# built (at start-up, once per handler), so two builds never interleave.
_BUILD_LOCK = threading.Lock()


def api_lane_middleware() -> list[str]:
    """The middleware an API request goes through after the lane: those after it, minus the browser's."""
    middleware = list(settings.MIDDLEWARE)
    browser_only = set(settings.TARIF_BROWSER_ONLY_MIDDLEWARE)
    return [path for path in middleware[middleware.index(_SELF) + 1 :] if path not in browser_only]


def _chain(paths: list[str]) -> Callable[[HttpRequest], HttpResponseBase]:
    handler = BaseHandler()
    with _BUILD_LOCK:
        saved = settings.MIDDLEWARE
        settings.MIDDLEWARE = paths
        try:
            handler.load_middleware()
        finally:
            settings.MIDDLEWARE = saved
    return handler._middleware_chain  # type: ignore[attr-defined]  # set by load_middleware


class ApiLaneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.prefix = settings.TARIF_API_LANE_PREFIX
        self.api_chain = _chain(api_lane_middleware())

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info.startswith(self.prefix):
            return self.api_chain(request)
        return self.get_response(request)
