"""OpenAPI generation: every operation documents its error shapes and the Idempotency-Key header."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter

from config.api.serializers import ProblemSerializer

PROBLEM_MEDIA_TYPES = ["application/problem+json"]
READ_ERRORS = ("400", "401", "403", "404", "406", "429")
WRITE_ERRORS = ("400", "401", "403", "404", "406", "409", "415", "422", "429")


class ApiAutoSchema(AutoSchema):
    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self.method in ("POST", "PATCH"):  # both replay a stored response (config/api/idempotency.py)
            parameters.append(
                OpenApiParameter(
                    "Idempotency-Key",
                    str,
                    OpenApiParameter.HEADER,
                    required=False,
                    description="Send the same key to retry safely: the first response is replayed for 24 hours.",
                )
            )
        return parameters

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        bodies = super()._get_response_bodies(direction)
        if direction != "response":
            return bodies
        codes = READ_ERRORS if self.method in ("GET", "HEAD", "OPTIONS") else WRITE_ERRORS
        for code in codes:
            if code not in bodies:
                bodies[code] = self._get_response_for_code(
                    ProblemSerializer, code, media_types=PROBLEM_MEDIA_TYPES, direction=direction
                )
        return bodies
