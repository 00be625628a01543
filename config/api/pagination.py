"""Cursor pagination: stable under inserts, O(1) per page, newest first."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.response import Response

from config.api.exceptions import ApiError

# Positions are primary keys (ordering "-pk"): positive integers that fit a bigint.
_MAX_POSITION_DIGITS = 18


class ApiCursorPagination(CursorPagination):
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100
    ordering = "-pk"

    def decode_cursor(self, request: Any) -> Cursor | None:
        """A cursor the API never produced is a 400 naming the parameter (DRF: a 404, or a 500
        when its position is not a number the database can compare with a primary key)."""
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
