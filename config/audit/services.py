"""Writing the audit log. `audit_record` is the one entry point (admin middleware, API, commands)."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.http import HttpRequest

from config.audit.context import client_ip, current_request_id
from config.audit.models import AuditEntry
from config.types import ActingUser, JsonDict, JsonMapping
from customers.fields import EncryptedTextField

logger = logging.getLogger(__name__)

MASKED = "[encrypted]"
_SECRET_NAMES = ("password", "token", "secret", "otp", "key")
_MAX_TEXT = 500


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value[:_MAX_TEXT] if isinstance(value, str) else value
    if isinstance(value, float | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping | list | tuple):
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))
    return str(value)[:_MAX_TEXT]


def is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_NAMES)


def instance_snapshot(instance: models.Model) -> JsonDict:
    """The row's column values, JSON-safe; encrypted and secret columns masked.

    Encrypted values (IBAN, tax id) never reach the log in clear: the log shows that
    they changed, not what they are.
    """
    snapshot: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname)
        if isinstance(field, EncryptedTextField) or is_secret_field(field.name):
            snapshot[field.attname] = f"{MASKED}:{_fingerprint(value)}" if value else value
        else:
            snapshot[field.attname] = _json_value(value)
    return snapshot


def _fingerprint(value: Any) -> str:
    """A short keyed hash: equal values compare equal in a diff, the value cannot be read back."""
    return hmac.new(settings.SECRET_KEY.encode(), str(value).encode(), hashlib.sha256).hexdigest()[:8]


def snapshot_diff(before: JsonMapping | None, after: JsonMapping | None) -> dict[str, list[object]]:
    """{field: [old, new]} for every field whose value differs (all fields on create or delete)."""
    before, after = before or {}, after or {}
    return {
        name: [before.get(name), after.get(name)]
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def _as_snapshot(value: models.Model | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, models.Model):
        return instance_snapshot(value)
    return {str(key): _json_value(item) for key, item in value.items()}


def audit_record(
    *,
    actor: ActingUser | AnonymousUser,
    action: str,
    obj: models.Model | None = None,
    before: models.Model | JsonMapping | None = None,
    after: models.Model | JsonMapping | None = None,
    request: HttpRequest | None = None,
    channel: str = AuditEntry.Channel.ADMIN,
    target_type: str = "",
    target_id: str | int = "",
    target_repr: str = "",
    status_code: int | None = None,
    extra: JsonMapping | None = None,
) -> AuditEntry:
    """Append one entry. `before`/`after` are model instances (snapshotted here) or plain dicts.

    The API calls this for every write: `audit_record(actor=request.user, action="subscription.create",
    obj=subscription, after=subscription, request=request, channel="api")`.
    """
    before_snapshot, after_snapshot = _as_snapshot(before), _as_snapshot(after)
    if obj is not None:
        target_type = target_type or obj._meta.label_lower
        target_id = target_id or (obj.pk if obj.pk is not None else "")
        target_repr = target_repr or str(obj)
    user = actor if actor is not None and not isinstance(actor, AnonymousUser) and actor.is_authenticated else None
    return AuditEntry.objects.create(
        actor=user,
        actor_repr=(user.get_username() if user is not None else "")[:150],
        channel=channel,
        action=action[:80],
        target_type=target_type[:100],
        target_id=str(target_id)[:64],
        target_repr=str(target_repr)[:200],
        before=before_snapshot,
        after=after_snapshot,
        changes=snapshot_diff(before_snapshot, after_snapshot),
        ip_address=client_ip(request) if request is not None else None,
        request_id=(getattr(request, "request_id", "") if request is not None else "") or current_request_id(),
        method=(request.method or "")[:10] if request is not None else "",
        path=request.path[:300] if request is not None else "",
        status_code=status_code,
        extra=_as_snapshot(extra) or {},
    )
