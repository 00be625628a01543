"""API key authentication: `Authorization: Bearer tk_live_…` (the key is looked up by its hash)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from config.models import ApiKey, api_key_hash

# last_used_at is written at most this often per key: one UPDATE per request would make
# every read a write and serialize a busy key on its row.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class ApiClient:
    """Who is calling: an integration, not a person (never staff, never a superuser)."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True
    pk = None
    id = None

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"

    def has_perm(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def has_perms(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def has_module_perms(self, *args: Any, **kwargs: Any) -> bool:
        return False


def _key_by_hash(hashed: str) -> ApiKey | None:
    """The key with this hash, in one round trip of SQL built once (every API request starts
    here: no queryset compilation; `raw()` still converts the columns as the ORM would). Its
    `created_by` loads on first use (writes name the staff member; reads never need it)."""
    quote = connection.ops.quote_name
    sql = f"SELECT * FROM {quote(ApiKey._meta.db_table)} WHERE {quote('hashed_key')} = %s"
    return next(iter(ApiKey.objects.raw(sql, [hashed])), None)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[ApiClient, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(gettext("Give the key as `Authorization: Bearer <key>`."))
        try:
            raw = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed(gettext("Invalid API key.")) from None
        key = _key_by_hash(api_key_hash(raw))
        if key is None:
            raise exceptions.AuthenticationFailed(gettext("Invalid API key."))
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(gettext("This API key has been revoked."))
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return ApiClient(key), key

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'


def request_api_key(request: Any) -> ApiKey | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) else None


def acting_user(request: Any) -> Any:
    """The staff member who created the calling key: domain events and audit name them."""
    key = request_api_key(request)
    return key.created_by if key is not None else None


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "config.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key created in the admin: `Authorization: Bearer tk_live_…`.",
        }
