"""API key authentication: `Authorization: Bearer tk_live_…` (the key is looked up by its hash)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connections, router
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


# Per database alias: the lookup's SQL, the columns' attribute names and their converters.
_KEY_LOOKUPS: dict[str, tuple[str, list[str], list[tuple[int, list[Any], Any]]]] = {}


def _key_lookup(alias: str) -> tuple[str, list[str], list[tuple[int, list[Any], Any]]]:
    if alias not in _KEY_LOOKUPS:
        wrapper = connections[alias]
        quote = wrapper.ops.quote_name
        fields = ApiKey._meta.concrete_fields
        columns = ", ".join(quote(field.column) for field in fields)
        sql = f"SELECT {columns} FROM {quote(ApiKey._meta.db_table)} WHERE {quote('hashed_key')} = %s"
        converters = []
        for index, field in enumerate(fields):
            column = field.get_col(ApiKey._meta.db_table)
            functions = wrapper.ops.get_db_converters(column) + field.get_db_converters(wrapper)  # type: ignore[attr-defined]
            if functions:
                converters.append((index, functions, column))
        _KEY_LOOKUPS[alias] = (sql, [field.attname for field in fields], converters)
    return _KEY_LOOKUPS[alias]


def _key_by_hash(hashed: str) -> ApiKey | None:
    """The key with this hash, in one round trip of SQL built once (every API request starts
    here). A cursor and `Model.from_db`, with the columns converted as the ORM would: `raw()`
    re-derives its column mapping and converters on every call (issue 20: ~0.3 ms a request).
    Its `created_by` loads on first use (writes name the staff member; reads never need it)."""
    alias = router.db_for_read(ApiKey)
    sql, attnames, converters = _key_lookup(alias)
    wrapper = connections[alias]
    with wrapper.cursor() as cursor:
        cursor.execute(sql, [hashed])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, functions, column in converters:
        for function in functions:
            values[index] = function(values[index], column, wrapper)
    return ApiKey.from_db(alias, attnames, values)


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
