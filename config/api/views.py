"""The base every API view builds on: auth/permissions/throttle from settings, idempotency, audit hook,
and the mode of the calling key (a sandbox key sees and changes test-mode objects only)."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import mixins, viewsets
from rest_framework.permissions import SAFE_METHODS

from config.api.audit import api_write_succeeded
from config.api.authentication import request_api_key
from config.api.idempotency import IdempotencyReplay, idempotency_begin, idempotency_finish, request_fingerprint
from config.api.ids import InvalidPublicId, pk_from_public_id
from config.api.strict import StrictParametersMixin
from config.db_routers import use_replica
from config.models import ApiKey
from config.modes import is_mode_scoped, reset_livemode, scope_to_mode, set_livemode


def request_livemode(request: Any) -> bool:
    """The mode of an API request: test for a sandbox key (`tk_test_…`), live otherwise."""
    api_key = request_api_key(request)
    return not (api_key is not None and api_key.mode == ApiKey.Mode.TEST)


class ApiViewMixin(StrictParametersMixin):
    """Unknown parameters refused, Idempotency-Key on every POST, the audit hook after every successful write."""

    _idempotency_record = None
    _replica: use_replica | None = None

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # The mode set in initial() lasts for this request only, whatever happens.
        token = set_livemode(None)
        self._replica = None
        try:
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        finally:
            if self._replica is not None:
                self._replica.__exit__(None, None, None)
            reset_livemode(token)

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        self._idempotency_record = None
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        # Authentication ran: from here on every queryset and reference is scoped to the key's mode.
        set_livemode(request_livemode(request))
        if request.method == "GET" and getattr(self, "action", None) == "list":
            # Issue 20: a list reads the replica (lag-guarded); the key was checked on the primary.
            self._replica = use_replica()
            self._replica.__enter__()
        key = request.headers.get("Idempotency-Key")
        api_key = request_api_key(request)
        if request.method in ("POST", "PATCH") and key is not None and api_key is not None:
            fingerprint = request_fingerprint(method=request.method, path=request.path, body=request._request.body)
            self._idempotency_record = idempotency_begin(api_key=api_key, key=key, fingerprint=fingerprint)

    def handle_exception(self, exc: Exception) -> Any:
        if isinstance(exc, IdempotencyReplay):
            return exc.response
        return super().handle_exception(exc)  # type: ignore[misc]

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if response.has_header("Idempotent-Replayed"):
            return response
        if self._idempotency_record is not None:
            idempotency_finish(record=self._idempotency_record, response=response)
        writes = getattr(self, "action", None) not in getattr(self, "read_actions", ())
        if request.method not in SAFE_METHODS and writes and response.status_code < 400:
            api_write_succeeded(
                request=request,
                response=response,
                api_key=request_api_key(request),
                action=getattr(self, "action", None),
            )
        return response


class ModeScopedMixin:
    """Lists, lookups and filters see the calling key's mode only: another mode's id is a 404
    (never a 403, which would tell that the object exists). The one place views are scoped."""

    def filter_queryset(self, queryset: Any) -> Any:
        if is_mode_scoped(queryset.model):
            queryset = scope_to_mode(queryset, livemode=request_livemode(self.request))  # type: ignore[attr-defined]
        return super().filter_queryset(queryset)  # type: ignore[misc]


class PublicIdLookupMixin:
    """`/customers/cus_42`: the URL carries the public id; a wrong prefix or unknown id is a 404."""

    def get_object(self) -> Any:
        queryset = self.filter_queryset(self.get_queryset())  # type: ignore[attr-defined]
        try:
            pk = pk_from_public_id(self.kwargs["pk"], model=queryset.model)  # type: ignore[attr-defined]
        except InvalidPublicId:
            raise Http404 from None
        obj = queryset.filter(pk=pk).first()
        if obj is None:
            raise Http404
        self.check_object_permissions(self.request, obj)  # type: ignore[attr-defined]
        return obj


class ApiViewSet(ModeScopedMixin, PublicIdLookupMixin, ApiViewMixin, viewsets.GenericViewSet):
    lookup_value_regex = "[a-z]+_[0-9]+"


class ReadOnlyApiViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    pass
