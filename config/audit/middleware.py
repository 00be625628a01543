"""Request ids for every request, and an audit entry for every state-changing console request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import ADDITION, LogEntry
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from config.audit.context import new_request_id, request_id_var
from config.audit.services import audit_record, instance_snapshot, is_secret_field

logger = logging.getLogger(__name__)

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
# The sign-in steps are throttled and logged by django-axes; they are not staff actions.
UNAUDITED_VIEWS = {"login", "logout", "otp_verify", "otp_enrol", "jsi18n", "set_language"}
MAX_SELECTED = 200


class RequestIdMiddleware:
    """Gives each request an id (or keeps a proxy's X-Request-ID), for logs, audit and the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = new_request_id(request.headers.get("X-Request-ID"))
        token = request_id_var.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


def _registered_model(url_name: str, site: admin.AdminSite) -> tuple[type[models.Model] | None, str]:
    """The admin model a URL name belongs to (`billing_payment_refund` -> Payment, "refund")."""
    best: tuple[type[models.Model] | None, str] = (None, url_name)
    best_length = 0
    for model in site._registry:
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        if url_name.startswith(prefix) and len(prefix) > best_length:
            best, best_length = (model, url_name[len(prefix) :]), len(prefix)
    return best


def _snapshots(model: type[models.Model] | None, ids: list[str]) -> dict[str, models.Model]:
    if model is None or not ids:
        return {}
    try:
        return {str(obj.pk): obj for obj in model._base_manager.filter(pk__in=ids)}
    except (ValueError, TypeError):  # an id that is not a valid primary key: the view will 404
        return {}


def _posted_fields(request: HttpRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in request.POST:
        if name in {"csrfmiddlewaretoken", "_selected_action"}:
            continue
        values = request.POST.getlist(name)
        if is_secret_field(name) or "iban" in name.lower() or "tax_id" in name.lower():
            fields[name] = "[redacted]"
        else:
            fields[name] = [value[:200] for value in values] if len(values) > 1 else values[0][:200]
    return fields


class AdminAuditMiddleware:
    """Audits every POST (or other unsafe request) a signed-in user makes to the console.

    One entry per affected object, with before/after snapshots, for add / change / delete,
    admin actions on selected rows and the custom service views (refund, record payment,
    void...): the object comes from the URL (`object_id`) or the selected rows; views that
    create objects of their own are recorded with what was posted and the response status.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in SAFE_METHODS:
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        url_name = match.url_name or ""
        # Live previews (the invoice editor's totals, ...) POST the form being typed and write nothing.
        if match.namespace != admin.site.name or url_name in UNAUDITED_VIEWS or url_name.endswith("_preview"):
            return self.get_response(request)

        model, operation = _registered_model(match.url_name or "", admin.site)
        object_id = match.kwargs.get("object_id")
        ids = [str(object_id)] if object_id else []
        if operation == "changelist" and request.POST.get("action"):
            operation = f"action:{request.POST['action']}"
            ids = request.POST.getlist("_selected_action")[:MAX_SELECTED]
        before = {pk: instance_snapshot(obj) for pk, obj in _snapshots(model, ids).items()}

        last_admin_log = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

        response = self.get_response(request)

        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return response
        try:
            self._record(request, response, model, operation, ids, before, last_admin_log)
        except Exception:  # the action happened; failing to log it must be loud, not a 500
            logger.exception("audit: could not record %s %s", request.method, request.path)
        return response

    def _record(
        self,
        request: HttpRequest,
        response: HttpResponse,
        model: type[models.Model] | None,
        operation: str,
        ids: list[str],
        before: dict[str, dict[str, Any]],
        last_admin_log: int,
    ) -> None:
        if operation == "add" and model is not None:
            added = LogEntry.objects.filter(pk__gt=last_admin_log, user=request.user, action_flag=ADDITION)
            ids = [str(pk) for pk in added.values_list("object_id", flat=True)]
        after_objects = _snapshots(model, ids)
        is_model_form = operation in {"add", "change"}
        extra = {} if is_model_form else {"posted": _posted_fields(request)}
        label = model._meta.label_lower if model is not None else ""
        if not ids:
            audit_record(
                actor=request.user,
                action=operation,
                request=request,
                target_type=label,
                status_code=response.status_code,
                extra=extra,
            )
            return
        for pk in ids:
            after_obj = after_objects.get(pk)
            if (
                is_model_form
                and response.status_code == 200
                and before.get(pk) == (instance_snapshot(after_obj) if after_obj is not None else None)
            ):
                continue  # the form was shown again with errors: nothing happened
            audit_record(
                actor=request.user,
                action=operation,
                obj=after_obj,
                before=before.get(pk),
                after=after_obj,
                request=request,
                target_type=label,
                target_id=pk,
                target_repr=str(after_obj) if after_obj is not None else "",
                status_code=response.status_code,
                extra=extra,
            )
