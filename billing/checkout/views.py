"""The hosted checkout page (filled in below)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse


def session_page(request: HttpRequest, public_id: str) -> HttpResponse:
    raise Http404


session_total = session_return = session_done = session_page
