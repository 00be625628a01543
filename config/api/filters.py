"""Filters shared by the resources."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import django_filters
from django.utils.translation import gettext
from django_filters.rest_framework import DjangoFilterBackend

from config.api.exceptions import ApiError


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time, compared in UTC.

    Offsets that Python accepts but PostgreSQL does not (beyond ±15:59) would otherwise
    reach the database as they were written and fail there.
    """

    def filter(self, qs: Any, value: Any) -> Any:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return super().filter(qs, value)


def invalid_id_in_filter(name: str, error: Exception) -> Exception:
    """`?customer=sub_5`: an id of the wrong type or shape is the caller's mistake (400),
    not a question whose answer is an empty list."""
    return ApiError(
        gettext("%(name)s: %(error)s") % {"name": name, "error": error}, code="invalid_id", status_code=400, field=name
    )


class ApiFilterBackend(DjangoFilterBackend):
    """django-filter, with currency codes compared upper-case (`?currency=eur` finds EUR rows),
    as every currency parameter of the API accepts either case."""

    def get_filterset_kwargs(self, request: Any, queryset: Any, view: Any) -> dict[str, Any]:
        kwargs = super().get_filterset_kwargs(request, queryset, view)
        data = kwargs["data"]
        names = [name for name in data if name == "currency" or name.endswith("_currency")]
        if names:
            data = data.copy()
            for name in names:
                data[name] = data[name].upper()
            kwargs["data"] = data
        return kwargs
