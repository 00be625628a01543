"""Idempotency keys: the first response to a POST (or a PATCH) is stored and replayed for 24 hours.

The record is inserted (and committed) before the operation runs, under a unique
constraint on (API key, idempotency key): of two concurrent requests with one key,
exactly one inserts and runs; the other waits for the stored response and replays it.
A request with a known key but another method, path or body is refused (422).
Responses with a 5xx status are not stored: the key can be retried.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext

from config.api.exceptions import ApiError
from config.models import ApiKey, IdempotencyRecord

RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255
WAIT_FOR_CONCURRENT = 30.0  # seconds a second request waits for the first one's response
POLL_INTERVAL = 0.05


class IdempotencyReplay(Exception):
    def __init__(self, response: HttpResponse) -> None:
        super().__init__("replay")
        self.response = response


def request_fingerprint(*, method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        bytes(record.response_body or b""),
        status=record.response_status,
        content_type=record.response_content_type or "application/json",
    )
    response["Idempotent-Replayed"] = "true"
    return response


def idempotency_begin(*, api_key: ApiKey, key: str, fingerprint: str) -> IdempotencyRecord:
    """Claim `key` for this request, or raise IdempotencyReplay / ApiError."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(
            gettext("An Idempotency-Key is 1 to %(max)s printable characters.") % {"max": MAX_KEY_LENGTH},
            code="invalid_idempotency_key",
            status_code=400,
            field="Idempotency-Key",
        )
    IdempotencyRecord.objects.filter(api_key=api_key, key=key, created_at__lt=timezone.now() - RETENTION).delete()
    deadline = time.monotonic() + WAIT_FOR_CONCURRENT
    while True:
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(api_key=api_key, key=key, request_hash=fingerprint)
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(api_key=api_key, key=key).first()
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise ApiError(
                    gettext(
                        "This Idempotency-Key was already used with a different request (method, path or body). "
                        "Use a new key for a new request."
                    ),
                    code="idempotency_key_reused",
                    status_code=422,
                    field="Idempotency-Key",
                )
            if existing.status == IdempotencyRecord.Status.DONE:
                raise IdempotencyReplay(_replay(existing))
        if time.monotonic() > deadline:
            raise ApiError(
                gettext("A request with this Idempotency-Key is still being processed; retry later."),
                code="idempotency_key_in_use",
                status_code=409,
                field="Idempotency-Key",
            )
        time.sleep(POLL_INTERVAL)


def idempotency_finish(*, record: IdempotencyRecord, response: Any) -> None:
    if response.status_code >= 500:
        record.delete()
        return
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status=IdempotencyRecord.Status.DONE,
        response_status=response.status_code,
        response_content_type=response.get("Content-Type", "application/json"),
        response_body=bytes(response.content),
    )


def idempotency_records_purge() -> int:
    """Delete records past their 24 hours (a periodic task calls this)."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - RETENTION).delete()
    return deleted
