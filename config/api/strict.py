"""Undeclared parameters are refused, in the body and in the query string (Stripe's
"Received unknown parameter"), so a misspelt or unsupported option never changes a request's
meaning silently.

Bodies: the input serializers subclass `StrictSerializer` / `StrictModelSerializer`
(config.api.serializers). Query strings: `StrictParametersMixin`, part of every API view,
accepts on a GET the filterset's fields and the pagination parameters of a list, `expand`,
and what the view documents in `query_parameters`; actions that take no body
(`bodyless_actions`) refuse any body parameter. Everything else is a 400 `unknown_parameter`
naming each parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import serializers

UNKNOWN_PARAMETER = "unknown_parameter"
ALWAYS_ACCEPTED = frozenset({"expand"})


def unknown_parameters_error(names: Iterable[str]) -> serializers.ValidationError:
    return serializers.ValidationError(
        {
            name: [serializers.ErrorDetail(_("Unknown parameter: %(name)s.") % {"name": name}, code=UNKNOWN_PARAMETER)]
            for name in sorted(names)
        }
    )


def filterset_parameters(view: Any) -> set[str]:
    """The query parameters the view's filter backends understand (django-filter's filtersets)."""
    names: set[str] = set()
    for backend_class in getattr(view, "filter_backends", ()):
        backend = backend_class()
        if hasattr(backend, "get_filterset_class"):
            filterset_class = backend.get_filterset_class(view, view.get_queryset())
            if filterset_class is not None:
                names.update(filterset_class.base_filters)
    return names


def pagination_parameters(view: Any) -> set[str]:
    paginator = getattr(view, "paginator", None)
    if paginator is None:
        return set()
    names = {getattr(paginator, "cursor_query_param", None), getattr(paginator, "page_size_query_param", None)}
    return {name for name in names if name}


class StrictParametersMixin:
    """Refuse unknown query parameters on reads and any body on actions that take none."""

    # Extra query parameters an action documents, e.g. {"upcoming": ("subscription",)};
    # a plain APIView is keyed by its method ("get").
    query_parameters: dict[str, tuple[str, ...]] = {}
    bodyless_actions: tuple[str, ...] = ()

    def _action_name(self, request: Any) -> str:
        return getattr(self, "action", None) or request.method.lower()

    def accepted_query_parameters(self, request: Any) -> set[str]:
        action = self._action_name(request)
        accepted = set(ALWAYS_ACCEPTED) | set(self.query_parameters.get(action, ()))
        if action == "list":
            accepted |= filterset_parameters(self) | pagination_parameters(self)
        return accepted

    def check_parameters(self, request: Any) -> None:
        if request.method in ("GET", "HEAD"):
            unknown = set(request.query_params) - self.accepted_query_parameters(request)
            if unknown:
                raise unknown_parameters_error(unknown)
        elif self._action_name(request) in self.bodyless_actions:
            data = request.data
            if hasattr(data, "keys") and data.keys():
                raise unknown_parameters_error(str(key) for key in data.keys())

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self.check_parameters(request)
