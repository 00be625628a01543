"""Request/response hooks shared by every part of the site."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import reverse


class ConsoleScriptPolicyMiddleware:
    """Lets the console's scripts run under the site's Content-Security-Policy.

    django-unfold's interface is written with Alpine.js, whose standard build evaluates its
    `x-data`/`@click` expressions with `Function`, so console pages add `'unsafe-eval'` to
    `script-src`. Scripts still come only from our own static files: no inline script, no
    inline handler and no third-party origin is allowed anywhere (docs/security.md). The
    portal, the API and the public pages keep the strict policy.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefix = ""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not self.prefix:
            self.prefix = reverse("admin:index")
        if request.path_info.startswith(self.prefix):
            update = dict(getattr(response, "_csp_update", None) or {})
            update["script-src"] = [*update.get("script-src", []), "'unsafe-eval'"]
            response._csp_update = update  # type: ignore[attr-defined]
        return response


# The API, and the public checkout pages (issue 17: bench/checkout.py reads it there too).
SERVER_TIMING_PREFIXES = ("/api/", "/checkout/")


class ServerTimingMiddleware:
    """`Server-Timing: app;dur=1.8, cpu;dur=1.2` on API responses: the milliseconds Django spent on
    the request (wall clock), and the CPU time its thread used for it.

    Integrators (and bench/entitlements.py) can tell the server's share of a latency from the
    network's; the gap between `app` and `cpu` is waiting (the database, the scheduler). First in
    MIDDLEWARE, so it counts every other middleware; WSGI server time is not in it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started, cpu_started = time.perf_counter(), time.thread_time()
        response = self.get_response(request)
        if request.path_info.startswith(SERVER_TIMING_PREFIXES):
            wall, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
            response["Server-Timing"] = f"app;dur={wall * 1000:.2f}, cpu;dur={cpu * 1000:.2f}"
        return response
