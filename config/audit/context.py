"""The current request's id, shared with logging and the audit log through a context variable."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from django.conf import settings
from django.http import HttpRequest

request_id_var: ContextVar[str] = ContextVar("tarif_request_id", default="-")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def new_request_id(incoming: str | None = None) -> str:
    """Keep a well-formed id from the proxy (so logs join up across hops), else make one."""
    if incoming and _VALID_REQUEST_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or the hop our own proxies saw when behind them.

    TARIF_TRUSTED_PROXY_COUNT says how many reverse proxies append to X-Forwarded-For;
    addresses further left were written by the client and cannot be trusted.
    """
    proxies = getattr(settings, "TARIF_TRUSTED_PROXY_COUNT", 0)
    if proxies:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR") or None
