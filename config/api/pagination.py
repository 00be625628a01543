"""Cursor pagination: stable under inserts, O(1) per page, newest first."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext as _
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.response import Response

from config.api.exceptions import ApiError

# Positions are primary keys (ordering "-pk"): positive integers that fit a bigint.
_MAX_POSITION_DIGITS = 18
# What DRF's cursors are made of (base64 of a query string). Python's base64 decoder skips other
# characters, so `cursor=%%%` decoded to an empty cursor: the first page, not an error.
_CURSOR_CHARACTERS = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class ApiCursorPagination(CursorPagination):
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100
    ordering = "-pk"

    def get_page_size(self, request: Any) -> int:
        """`limit` is 1 to 100; anything else is a 400 naming it (DRF: the default size, silently)."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            raise ApiError(
                _("limit is a whole number from 1 to %(max)s.") % {"max": self.max_page_size},
                code="invalid_limit",
                status_code=400,
                field="limit",
            )
        return int(raw)

    def decode_cursor(self, request: Any) -> Cursor | None:
        """A cursor the API never produced is a 400 naming the parameter (DRF: a 404, or a 500
        when its position is not a number the database can compare with a primary key)."""
        raw = request.query_params.get(self.cursor_query_param)
        if raw and not _CURSOR_CHARACTERS.fullmatch(raw):
            raise _invalid_cursor()
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise _invalid_cursor() from None
        if cursor is None:
            return None
        position = cursor.position
        if position is not None and not (
            position.isascii()
            and position.isdigit()
            and len(position) <= _MAX_POSITION_DIGITS
            and not position.startswith("0")
        ):
            raise _invalid_cursor()
        return cursor

    def paginate_first_page(
        self, request: Any, rows: Callable[[int], list[dict[str, Any]]], view: Any = None
    ) -> list[dict[str, Any]] | None:
        """`paginate_queryset` for a request whose only parameter is `limit` (no cursor, no filter),
        with the rows read by `rows(page size + 1)` (config.api.first_page: SQL compiled once), or
        None when the request carries anything else: the caller then takes the general path. The
        page, `has_more` and the `next` link are set as DRF sets them for a first page."""
        if not set(request.query_params) <= {self.page_size_query_param}:
            return None
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        # DRF's get_ordering without a queryset: this paginator orders by its fixed `ordering` only.
        self.ordering = (self.ordering,) if isinstance(self.ordering, str) else tuple(self.ordering)  # type: ignore[assignment]
        self.cursor = None
        results = rows(self.page_size + 1)
        self.page = results[: self.page_size]
        self.has_next = len(results) > len(self.page)
        self.has_previous = False
        if self.has_next:
            self.next_position = self._get_position_from_instance(results[-1], self.ordering)
        if self.has_next and self.template is not None:
            self.display_page_controls = True
        return self.page

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "object": "list",
                "data": data,
                "has_more": self.has_next,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["object", "data", "has_more", "next", "previous"],
            "properties": {
                "object": {"type": "string", "enum": ["list"], "example": "list"},
                "data": schema,
                "has_more": {"type": "boolean", "example": True},
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "example": "https://billing.example.com/api/v1/customers?cursor=cD0xMjM%3D",
                },
                "previous": {"type": "string", "nullable": True, "format": "uri", "example": None},
            },
        }


def _invalid_cursor() -> ApiError:
    return ApiError(
        _("This cursor is not valid: use the `next` or `previous` link of a list answer."),
        code="invalid_cursor",
        status_code=400,
        field="cursor",
    )
