"""The one place called after every successful API write (audit log hook).

An audit log (or anything else that must see API writes) registers a callable in
`TARIF_API_WRITE_HOOKS` (dotted paths); each is called with `request`, `response`, the
API key and the view's `action`. Hooks run after the response is built, outside the
service's transaction; a hook that fails is logged and never turns a success into an error.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger("tarif.api.writes")


@cache
def _hooks() -> tuple[Any, ...]:
    return tuple(import_string(path) for path in getattr(settings, "TARIF_API_WRITE_HOOKS", ()))


def api_write_succeeded(*, request: Any, response: Any, api_key: Any, action: str | None) -> None:
    logger.info(
        "api write key=%s %s %s action=%s status=%s",
        getattr(api_key, "prefix", "-"),
        request.method,
        request.path,
        action,
        response.status_code,
    )
    for hook in _hooks():
        try:
            hook(request=request, response=response, api_key=api_key, action=action)
        except Exception:  # noqa: BLE001 - an audit sink failing must not undo a committed write
            logger.exception("API write hook %r failed", hook)
