"""API keys in the console: created by staff, the secret shown once, revocable, never readable again."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from config.api.keys import api_key_create, api_keys_revoke
from config.console import StyledAdmin
from config.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(StyledAdmin):
    list_display = ("name", "prefix", "scope", "mode", "created_by", "created_at", "last_used_at", "revoked_at")
    list_filter = ("scope", "mode", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def get_fields(self, request: Any, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("name", "scope", "mode")
        return ("name", "prefix", "scope", "mode", "created_by", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: Any, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # Scope and mode are part of what the secret grants: change them by issuing a new key.
        return ("prefix", "scope", "mode", "created_by", "created_at", "last_used_at", "revoked_at")

    def save_model(self, request: Any, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        key, raw = api_key_create(name=obj.name, scope=obj.scope, mode=obj.mode, created_by=request.user)
        obj.pk = key.pk
        obj.prefix, obj.hashed_key, obj.created_at = key.prefix, key.hashed_key, key.created_at
        messages.warning(
            request,
            _("Copy this API key now, it will not be shown again: %(key)s") % {"key": raw},
        )

    def has_delete_permission(self, request: Any, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead: events and audit entries keep pointing at the key

    @admin.action(description=_("Revoke the selected API keys"), permissions=["change"])
    def revoke(self, request: Any, queryset: Any) -> None:
        count = api_keys_revoke(keys=queryset)
        self.message_user(
            request, ngettext("%(count)d key revoked.", "%(count)d keys revoked.", count) % {"count": count}
        )
