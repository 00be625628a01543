"""One exception handler: every error of the API as RFC 9457 problem+json.

Domain errors raised by services all subclass `config.errors.DomainError`, which carries
its code and HTTP status: they are mapped here, once, generically (this module imports no
domain module), so views never catch them. A plain Django ValidationError is a refused
input (422). Anything else is a bug and stays a 500 (logged with its traceback).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.defaults import bad_request, page_not_found
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.api.strict import UNKNOWN_PARAMETER
from config.errors import DomainError

logger = logging.getLogger("tarif.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://tarif.dev/problems/"


class ApiError(exceptions.APIException):
    """An API-level refusal with its own code (idempotency mismatch, wrong mode...)."""

    def __init__(self, detail: str, *, code: str, status_code: int, field: str | None = None) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.problem_code = code
        self.field = field


def problem(
    *, status_code: int, code: str, detail: str, title: str | None = None, field: str | None = None, errors=None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": str(title or _TITLES.get(status_code, gettext_lazy("Error"))),
        "status": status_code,
        "detail": detail,
        "code": code,
        "field": field,
    }
    if errors:
        body["errors"] = errors
    return body


_TITLES = {
    400: gettext_lazy("Invalid request"),
    401: gettext_lazy("Authentication required"),
    403: gettext_lazy("Forbidden"),
    404: gettext_lazy("Not found"),
    405: gettext_lazy("Method not allowed"),
    406: gettext_lazy("Not acceptable"),
    409: gettext_lazy("Conflict"),
    413: gettext_lazy("Request too large"),
    415: gettext_lazy("Unsupported media type"),
    422: gettext_lazy("Request refused"),
    429: gettext_lazy("Too many requests"),
    500: gettext_lazy("Server error"),
}


def _flatten(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested error dicts/lists as a flat list of {field, code, message}."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                name = prefix
            elif isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                name = f"{prefix}[{key}]"  # ListField errors come keyed by position
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            out.extend(_flatten(value, name))
        return out
    if isinstance(detail, list):
        out = []
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                out.extend(_flatten(value, f"{prefix}[{index}]" if prefix else f"[{index}]"))
            else:
                out.extend(_flatten(value, prefix))
        return out
    code = getattr(detail, "code", None) or "invalid"
    return [{"field": prefix or None, "code": str(code), "message": str(detail)}]


def _django_validation(error: DjangoValidationError) -> list[dict[str, str]]:
    if hasattr(error, "error_dict"):
        return [
            {"field": None if name == "__all__" else name, "code": item.code or "invalid", "message": message}
            for name, items in error.error_dict.items()
            for item in items
            for message in item.messages
        ]
    return [
        {"field": None, "code": item.code or "invalid", "message": message}
        for item in error.error_list
        for message in item.messages
    ]


def domain_problem(exc: DomainError) -> dict[str, Any]:
    """The problem+json body of a domain error: its status and code, its message, its field if any."""
    errors = _django_validation(exc) if isinstance(exc, DjangoValidationError) else []
    field = getattr(exc, "field", None)
    if field is None and errors:
        field = errors[0]["field"]
    for error in errors:
        if error["code"] in ("invalid", None):
            error["code"] = exc.problem_code
    return problem(
        status_code=exc.http_status,
        code=exc.problem_code,
        detail=exc.message_text() or str(exc.default_message),
        field=field if isinstance(field, str) else None,
        errors=errors if len(errors) > 1 else None,
    )


def request_too_large_problem() -> dict[str, Any]:
    return problem(
        status_code=413,
        code="request_too_large",
        detail=str(_("The request body is larger than this server accepts.")),
    )


def _response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = Response(body, status=body["status"], headers=headers)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        # An unknown parameter is named first: it is usually why the other fields look wrong.
        unknown = [error for error in errors if error["code"] == UNKNOWN_PARAMETER]
        code = UNKNOWN_PARAMETER if unknown else "validation_error"
        first = (unknown or errors or [{"field": None, "message": str(_("Invalid request."))}])[0]
        if unknown:
            detail = first["message"]
        else:
            detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return _response(problem(status_code=400, code=code, detail=detail, field=first["field"], errors=errors))
    if isinstance(exc, ApiError):
        return _response(
            problem(status_code=exc.status_code, code=exc.problem_code, detail=str(exc.detail), field=exc.field)
        )
    if isinstance(exc, DomainError):
        return _response(domain_problem(exc))
    if isinstance(exc, RequestDataTooBig):
        return _response(request_too_large_problem())
    if isinstance(exc, DjangoValidationError):
        # A service refused the request: the input is well-formed but breaks a business rule.
        errors = _django_validation(exc)
        first = errors[0] if errors else {"field": None, "code": "refused", "message": _("The request was refused.")}
        code = first["code"] if first["code"] != "invalid" else "refused"
        return _response(
            problem(status_code=422, code=code, detail=first["message"], field=first["field"], errors=errors)
        )
    if isinstance(exc, DataError):
        # A value the database cannot store or compare (out-of-range date, number...):
        # it came from the request, since services validate what they compute.
        return _response(problem(status_code=400, code="invalid_value", detail=_("A value is out of range.")))
    if isinstance(exc, ObjectDoesNotExist | Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        # Unexpected: log it with the traceback and answer in the same shape (still a 500).
        logger.exception("unhandled API error", exc_info=exc)
        return _response(problem(status_code=500, code="server_error", detail=_("An unexpected error occurred.")))
    assert isinstance(exc, exceptions.APIException)
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else "error"
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = {name: value for name, value in response.items() if name in ("Retry-After", "WWW-Authenticate", "Allow")}
    return _response(problem(status_code=response.status_code, code=code, detail=str(detail)), headers=headers)


def problem_json_response(*, status_code: int, code: str, detail: str) -> JsonResponse:
    """For Django-level handlers (404 of an unknown /api/ URL) outside DRF."""
    return JsonResponse(
        problem(status_code=status_code, code=code, detail=detail),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def handler404(request: Any, exception: Exception | None = None) -> Any:
    if request.path.startswith("/api/"):
        return problem_json_response(status_code=404, code="not_found", detail=_("No such endpoint."))

    return page_not_found(request, exception)


def handler400(request: Any, exception: Exception | None = None) -> Any:
    """Django's 400 (a SuspiciousOperation): a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413,
    as problem+json under /api/ and as a plain page in the console and the portal."""
    if isinstance(exception, RequestDataTooBig):
        if request.path.startswith("/api/"):
            body = request_too_large_problem()
            return JsonResponse(body, status=413, content_type=PROBLEM_CONTENT_TYPE)
        return HttpResponse(
            _("The request is larger than this server accepts. Send less data at once."),
            status=413,
            content_type="text/plain; charset=utf-8",
        )
    if request.path.startswith("/api/"):
        return problem_json_response(status_code=400, code="bad_request", detail=str(_("Bad request.")))
    return bad_request(request, exception)
