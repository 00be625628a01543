"""OpenAPI generation: every operation documents its error shapes, the Idempotency-Key header,
a summary, a description, and examples of its request and response bodies.

The standard operations of a resource (list, retrieve, create, update, delete) get Stripe-style
summaries and descriptions from the resource's name; custom actions describe themselves (their
docstring or `extend_schema(description=...)`). Examples come from `extend_schema(examples=...)`
or, for every serializer, from config/api/examples.py. tests/api/test_schema_quality.py fails
on an operation without them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_doc
from drf_spectacular.utils import OpenApiExample, OpenApiParameter

from config.api.examples import request_example, response_example
from config.api.serializers import ProblemSerializer

PROBLEM_MEDIA_TYPES = ["application/problem+json"]
READ_ERRORS = ("400", "401", "403", "404", "406", "429")
WRITE_ERRORS = ("400", "401", "403", "404", "406", "409", "415", "422", "429")

_STANDARD_SUMMARIES = {
    "list": "List {plural}",
    "retrieve": "Retrieve a {name}",
    "create": "Create a {name}",
    "partial_update": "Update a {name}",
    "update": "Replace a {name}",
    "destroy": "Delete a {name}",
}
_STANDARD_DESCRIPTIONS = {
    "list": "Returns the {plural} of the calling key's mode (live or test), newest first, in pages of `limit` "
    "(1 to 100, default 20): follow `next` for the next page. Filter with the query parameters below; any "
    "other query parameter is refused (400 `unknown_parameter`).",
    "retrieve": "Returns one {name} by its id. `expand` nests related objects where the resource offers it. "
    "An id of another mode or of another type of object is a 404.",
    "create": "Creates a {name} in the calling key's mode. Undeclared parameters are refused (400 "
    "`unknown_parameter`); send an `Idempotency-Key` header to retry safely.",
    "partial_update": "Updates the {name}'s given fields; fields not sent keep their value. Undeclared "
    "parameters are refused (400 `unknown_parameter`).",
    "update": "Replaces the {name}'s fields. Undeclared parameters are refused (400 `unknown_parameter`).",
    "destroy": "Deletes the {name}.",
}


class ApiAutoSchema(AutoSchema):
    def _resource_names(self) -> tuple[str, str]:
        name = (getattr(self.view, "basename", None) or "object").replace("_", " ")
        return name, f"{name}s"

    def _action(self) -> str | None:
        return getattr(self.view, "action", None)

    def get_summary(self) -> str | None:
        summary = super().get_summary()
        template = _STANDARD_SUMMARIES.get(self._action() or "")
        if summary or template is None:
            return summary
        name, plural = self._resource_names()
        return template.format(name=name, plural=plural)

    def get_description(self) -> str:  # type: ignore[override]
        """The action's own text; for a standard operation, the standard text and the resource's."""
        action = self._action()
        handler = getattr(self.view, action or self.method.lower(), None)
        own = get_doc(handler) if handler is not None else ""
        template = _STANDARD_DESCRIPTIONS.get(action or "")
        if template is None:
            return own
        name, plural = self._resource_names()
        standard = template.format(name=name, plural=plural)
        resource = get_doc(self.view.__class__)
        return "\n\n".join(part for part in (own or standard, resource) if part)

    def get_examples(self) -> list[OpenApiExample]:
        examples = list(super().get_examples())
        # An operation's own examples win; the serializer's fill in the direction they leave out.
        has_request = any(not example.response_only for example in examples)
        has_response = any(not example.request_only for example in examples)
        request_serializer = self.get_request_serializer() if self.method in ("POST", "PATCH", "PUT") else None
        value = None if has_request else request_example(request_serializer, partial=self.method == "PATCH")
        if value is not None:
            examples.append(OpenApiExample("Request", value=value, request_only=True))
        responses = self.get_response_serializers()
        serializer = responses.get(200) or responses.get(201) if isinstance(responses, dict) else responses
        value = None if has_response else response_example(serializer)
        if value is not None:
            examples.append(OpenApiExample("Response", value=value, response_only=True, status_codes=["200", "201"]))
        return examples

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
            if code not in bodies or "content" not in bodies[code]:  # absent, or declared without a body
                description = bodies.get(code, {}).get("description")
                bodies[code] = self._get_response_for_code(
                    ProblemSerializer, code, media_types=PROBLEM_MEDIA_TYPES, direction=direction
                )
                if description:
                    bodies[code]["description"] = description
        return bodies
