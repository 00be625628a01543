"""Creating and revoking API keys (the admin calls these)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from config.models import ApiKey


@transaction.atomic(savepoint=False)
def api_key_create(*, name: str, scope: str, mode: str, created_by: Any) -> tuple[ApiKey, str]:
    """A new key and its secret: the secret is returned once and only its SHA-256 is stored."""
    raw = ApiKey.generate(mode=mode)
    key = ApiKey(name=name, scope=scope, mode=mode, created_by=created_by)
    key.set_secret(raw)
    key.full_clean()
    key.save()
    return key, raw


def api_keys_revoke(*, keys: Any) -> int:
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
