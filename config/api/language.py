"""The API speaks English unless the request asks otherwise (`Accept-Language: fr`).

Django's LocaleMiddleware serves the console and the portal: it also reads the language
cookie and falls back to LANGUAGE_CODE (French). An integrator's program has no cookie and
expects the documentation's language, so under /api/ only the Accept-Language header counts
(q-values and regional variants such as fr-FR honoured) and the fallback is
TARIF_API_DEFAULT_LANGUAGE (English).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.translation.trans_real import parse_accept_lang_header

API_PREFIX = "/api/"


def api_language(accept_language: str) -> str:
    """The first supported language of an Accept-Language header, by q-value; else the API's default."""
    for language, _quality in parse_accept_lang_header(accept_language):
        if language == "*":
            continue
        try:
            return translation.get_supported_language_variant(language)
        except LookupError:
            continue
    return settings.TARIF_API_DEFAULT_LANGUAGE


class ApiLanguageMiddleware:
    """Place after LocaleMiddleware: it overrides that choice for /api/ requests only."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        language = api_language(request.META.get("HTTP_ACCEPT_LANGUAGE", ""))
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        # The answer depends on the header (LocaleMiddleware, which says so for the other pages,
        # is not in the API's lane: config/api/lane.py).
        patch_vary_headers(response, ("Accept-Language",))
        response.headers["Content-Language"] = language
        return response
