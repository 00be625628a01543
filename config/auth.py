from __future__ import annotations

from typing import Any

from config.mfa import second_factor_login

__all__ = ["AXES_USERNAME_MAX_LENGTH", "axes_username", "second_factor_login"]

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
