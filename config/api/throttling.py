"""Rate limit per API key (DRF throttling on Django's cache: Redis in production, so all workers share it)."""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import SimpleRateThrottle

from config.api.authentication import request_api_key


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        key = request_api_key(request)
        if key is None:
            return None  # unauthenticated requests are refused before they cost anything
        return self.cache_format % {"scope": self.scope, "ident": key.pk}
