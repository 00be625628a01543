"""Scopes: a `read` key may only read; a `read_write` key may also write. Test clocks need a sandbox key."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions

from config.api.authentication import request_api_key
from config.models import ApiKey


class HasApiKeyScope(permissions.BasePermission):
    message = "This API key is read-only: writing needs a read_write key."

    def has_permission(self, request: Any, view: Any) -> bool:
        key = request_api_key(request)
        if key is None:
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        # POST actions that compute without writing (preview_change) are reads.
        if getattr(view, "action", None) in getattr(view, "read_actions", ()):
            return True
        return key.can_write


class SandboxKeyOnly(permissions.BasePermission):
    """Test clocks move time for billing: only sandbox (`tk_test_`) keys may touch them."""

    message = "Test clocks are available to sandbox keys (tk_test_…) only."

    def has_permission(self, request: Any, view: Any) -> bool:
        key = request_api_key(request)
        return key is not None and key.mode == ApiKey.Mode.TEST
