"""Audit hook for API writes (registered in `TARIF_API_WRITE_HOOKS`, see config/api/audit.py).

The API's services run in their own transactions; this hook appends one audit entry per
successful write: the key's owner as actor (the key prefix in `extra`), the resource id
from the response, the request body as sent (secrets masked by the snapshot) and the
object as the API returned it (`after`). "Before" values are the domain events' job for
API writes: each service records its own before/after in the event log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.audit.models import AuditEntry
from config.audit.services import audit_record, is_secret_field

# Beyond the usual secrets: what a payment source may carry (sandbox test cards, IBANs).
_PAYMENT_FIELDS = {"number", "cvc", "iban", "card", "client_secret"}


def _masked(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            str(name): "***" if is_secret_field(str(name)) or str(name).lower() in _PAYMENT_FIELDS else _masked(item)
            for name, item in value.items()
        }
    if isinstance(value, list):
        return [_masked(item) for item in value[:50]]
    return value


def api_write_audited(*, request: Any, response: Any, api_key: Any, action: str | None) -> None:
    data = getattr(response, "data", None)
    after = _masked(data) if isinstance(data, Mapping) else None
    body = _masked(getattr(request, "data", None))
    resource = request.resolver_match.url_name if getattr(request, "resolver_match", None) else ""
    audit_record(
        actor=getattr(api_key, "created_by", None),
        action=f"api.{resource or 'write'}.{action or request.method.lower()}",
        after=after,
        request=request,
        channel=AuditEntry.Channel.API,
        target_type=str((after or {}).get("object", resource or "")),
        target_id=str((after or {}).get("id", "")),
        status_code=response.status_code,
        extra={
            "api_key": getattr(api_key, "prefix", ""),
            "request_body": body if isinstance(body, Mapping) else {"items": len(body)} if body else {},
        },
    )
