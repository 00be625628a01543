"""/metrics, restricted to a bearer token, or to addresses an operator listed explicitly."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django_prometheus.exports import ExportToDjangoView

from config.audit.context import client_ip


def metrics_allowed(request: HttpRequest) -> bool:
    token = settings.TARIF_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    # The client as seen through our trusted proxies (never "127.0.0.1" for everyone).
    allowed = settings.TARIF_METRICS_ALLOWED_IPS
    return bool(allowed) and client_ip(request) in allowed


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return ExportToDjangoView(request)
