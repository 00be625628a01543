"""Session inactivity / absolute timeouts, and read-only maintenance mode."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _

from config.ops.maintenance import maintenance_active

AUTH_AT = "_tarif_auth_at"
LAST_SEEN = "_tarif_last_seen"
# Writing the session on every request costs a query; a minute of slack on the idle clock does not matter.
LAST_SEEN_RESOLUTION = 60


def session_timeouts(user) -> tuple[int, int]:
    """(idle, absolute) in seconds for this kind of user."""
    if user.is_staff:
        return settings.TARIF_SESSION_IDLE_TIMEOUT_STAFF, settings.TARIF_SESSION_ABSOLUTE_TIMEOUT_STAFF
    return settings.TARIF_SESSION_IDLE_TIMEOUT_CUSTOMER, settings.TARIF_SESSION_ABSOLUTE_TIMEOUT_CUSTOMER


def session_started(sender, request: HttpRequest, user, **kwargs) -> None:
    """A sign-in starts both clocks afresh (the session key was cycled by login())."""
    now = time.time()
    request.session[AUTH_AT] = now
    request.session[LAST_SEEN] = now


class SessionTimeoutMiddleware:
    """Signs out a session idle for too long, or too old, whatever it does (ASVS V3.3)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            session = request.session
            auth_at = session.setdefault(AUTH_AT, now)
            last_seen = session.get(LAST_SEEN, now)
            idle, absolute = session_timeouts(user)
            if now - last_seen > idle or now - auth_at > absolute:
                was_staff = user.is_staff
                logout(request)
                messages.warning(request, _("Your session has expired. Please sign in again."))
                login_url = reverse("admin:login") if was_staff else reverse(settings.LOGIN_URL)
                return HttpResponseRedirect(f"{login_url}?next={request.path}")
            if now - last_seen >= LAST_SEEN_RESOLUTION or LAST_SEEN not in session:
                session[LAST_SEEN] = now
        return self.get_response(request)


# Signing in and out stay possible during maintenance so staff can look around.
_MAINTENANCE_ALLOWED_PREFIXES = (
    "/admin/login/",
    "/admin/logout/",
    "/admin/otp/",
    "/accounts/login/",
    "/accounts/logout/",
)
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class MaintenanceModeMiddleware:
    """While maintenance mode is on, reads work and writes answer 503 (HTML or problem+json)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method in _WRITE_METHODS
            and not request.path.startswith(_MAINTENANCE_ALLOWED_PREFIXES)
            and maintenance_active()
        ):
            return maintenance_response(request)
        return self.get_response(request)


def maintenance_response(request: HttpRequest) -> HttpResponse:
    detail = _(
        "Tarif is in read-only maintenance: nothing can be changed right now. Please try again in a few minutes."
    )
    wants_json = request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")
    if wants_json:
        response = JsonResponse(
            {"type": "about:blank", "title": _("Service in maintenance"), "status": 503, "detail": detail},
            status=503,
            content_type="application/problem+json",
        )
    else:
        response = render(request, "ops/maintenance.html", {"detail": detail}, status=503)
    response["Retry-After"] = "300"
    return response
