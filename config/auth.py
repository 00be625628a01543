from __future__ import annotations

from typing import Any


def axes_username(request: Any, credentials: dict[str, Any] | None) -> str | None:
    """The login name whatever the form calls it (admin: username, allauth: email/login)."""
    credentials = credentials or {}
    for field in ("username", "email", "login"):
        if credentials.get(field):
            return str(credentials[field]).strip().lower()
    if request is not None and request.method == "POST":
        for field in ("username", "email", "login"):
            if request.POST.get(field):
                return request.POST[field].strip().lower()
    return None
