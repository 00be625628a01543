"""Inbound gateway webhooks: verify, store once, settle (billing.services.payments.payment_webhook_handle).

Register `<TARIF_BASE_URL>/payments/stripe/webhook/` at Stripe (docs/payments.md, "Stripe").
A bad signature answers 400 and changes nothing; a duplicate answers 200 (Stripe stops
retrying) and changes nothing either.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.payments.gateway import GatewayError
from billing.payments.registry import STRIPE
from billing.services.payments import payment_webhook_handle

logger = logging.getLogger(__name__)


def _problem(status: int, title: str, detail: str) -> JsonResponse:
    return JsonResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


@csrf_exempt  # authenticated by the gateway's signature, not by a session
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        processed = payment_webhook_handle(gateway_name=STRIPE, payload=request.body, headers=request.headers)
    except GatewayError as error:
        logger.warning("Stripe webhook refused: %s", error)
        return _problem(400, _("Invalid webhook"), str(error))
    return JsonResponse({"received": True, "duplicate": not processed})
