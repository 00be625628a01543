"""The inbound status webhook of the PA: signed (HMAC-SHA256 + timestamp), idempotent."""

from __future__ import annotations

import json
from datetime import datetime
from typing import cast

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.api.exceptions import problem_json_response
from invoices.einvoicing.adapters import ORIGINS, Origin, StatusReport
from invoices.einvoicing.errors import WebhookSignatureError
from invoices.einvoicing.models import LifecycleCode, PlatformAccount
from invoices.einvoicing.services import SIGNATURE_HEADER, statuses_receive, webhook_verify


def _report(item: object) -> StatusReport | None:
    if not isinstance(item, dict):
        return None
    try:
        occurred_at = datetime.fromisoformat(str(item["occurredAt"]))
        code = str(item["code"])
        flow_id = str(item.get("flowId") or "")
    except (KeyError, ValueError):
        return None
    origin = str(item.get("origin") or "platform")
    if occurred_at.tzinfo is None or code not in LifecycleCode.values or origin not in ORIGINS:
        return None
    return StatusReport(
        flow_id=flow_id,
        tracking_id=str(item.get("trackingId") or ""),
        code=code,
        occurred_at=occurred_at,
        origin=cast(Origin, origin),
        reason_code=str(item.get("reasonCode") or ""),
        reason_text=str(item.get("reasonText") or ""),
        raw=dict(item),
    )


@csrf_exempt
@require_POST
def status_webhook(request: HttpRequest, account_id: int) -> HttpResponse:
    account = PlatformAccount.objects.filter(pk=account_id, active=True).first()
    if account is None:
        return problem_json_response(status_code=404, code="not_found", detail=_("No such platform account."))
    body = request.body
    try:
        webhook_verify(account=account, body=body, header=request.headers.get(SIGNATURE_HEADER, ""))
    except WebhookSignatureError as error:
        return problem_json_response(status_code=error.http_status, code=error.code, detail=error.message_text())
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    items = payload.get("statuses") or [payload.get("status")] if isinstance(payload, dict) else []
    reports = [_report(item) for item in items]
    if not reports or any(report is None for report in reports):
        return problem_json_response(
            status_code=400, code="einvoicing_bad_status", detail=_("The webhook carries no valid status.")
        )
    created = statuses_receive(account=account, reports=[report for report in reports if report is not None])
    return JsonResponse({"received": len(reports), "new": created})
