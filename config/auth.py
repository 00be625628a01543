from __future__ import annotations

from typing import Any

# django-axes stores the name in a varchar(255): a longer (hostile) login would make the
# failed attempt's INSERT fail on PostgreSQL and the sign-in page answer 500.
AXES_USERNAME_MAX_LENGTH = 255


def axes_username(request: Any, credentials: dict[str, Any] | None) -> str | None:
    """The login name whatever the form calls it (admin: username, allauth: email/login)."""
    credentials = credentials or {}
    for field in ("username", "email", "login"):
        if credentials.get(field):
            return str(credentials[field]).strip().lower()[:AXES_USERNAME_MAX_LENGTH]
    if request is not None and request.method == "POST":
        for field in ("username", "email", "login"):
            if request.POST.get(field):
                return request.POST[field].strip().lower()[:AXES_USERNAME_MAX_LENGTH]
    return None


def second_factor_login(request: Any, device: Any) -> None:
    """Mark the session verified by `device` (django-otp), under a new session key.

    The key was last changed at the password step; rotating it again here means a session
    id learnt or planted before the second factor (fixation) never becomes a verified one.
    """
    from django_otp import login as otp_login

    otp_login(request, device)
    request.session.cycle_key()
