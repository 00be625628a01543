"""The OpenAPI schema documents every operation fully: a summary, a description, its error
statuses as problem+json, and examples of its JSON request and response bodies that match
the bodies' schemas. Generated in-process, so endpoints added later are held to the same rules."""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
METHODS = ("get", "post", "put", "patch", "delete")
OPERATIONS = sorted(
    (path, method) for path, operations in SCHEMA["paths"].items() for method in operations if method in METHODS
)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _example_values(content: dict[str, Any]) -> list[Any]:
    return [example["value"] for example in content.get("examples", {}).values()]


def _shape_problems(value: Any, schema: dict[str, Any], *, request: bool) -> list[str]:
    """Keys of an example that its schema does not have (and, for a response, keys it lacks)."""
    schema = _resolve(schema)
    if schema.get("type") == "array":
        return [p for item in value for p in _shape_problems(item, schema["items"], request=request)]
    properties = schema.get("properties")
    if not properties or not isinstance(value, dict):
        return []
    problems = [f"unknown key {key!r}" for key in value if key not in properties]
    if not request:
        problems += [f"missing key {key!r}" for key in properties if key not in value]
    for key, item in value.items():
        if key in properties and isinstance(item, dict | list) and item:
            problems += [f"{key}.{p}" for p in _shape_problems(item, properties[key], request=request)]
    return problems


def operation_problems(operation: dict[str, Any]) -> list[str]:
    problems = []
    if not operation.get("summary"):
        problems.append("no summary")
    if not operation.get("description"):
        problems.append("no description")
    errors = [
        status
        for status, response in operation.get("responses", {}).items()
        if status.startswith("4") and "application/problem+json" in response.get("content", {})
    ]
    if not errors:
        problems.append("no problem+json error response")
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        values = _example_values(body)
        if not values:
            problems.append("no request example")
        for value in values:
            problems += [f"request example: {p}" for p in _shape_problems(value, body["schema"], request=True)]
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {}).get("application/json")
        if not status.startswith("2") or content is None:
            continue
        values = _example_values(content)
        if not values:
            problems.append(f"no {status} response example")
        for value in values:
            problems += [f"{status} example: {p}" for p in _shape_problems(value, content["schema"], request=False)]
    return problems


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_every_operation_is_fully_documented(path, method):
    assert operation_problems(SCHEMA["paths"][path][method]) == []


def test_the_check_catches_an_undocumented_operation():
    # Negative control: an operation with nothing documented, and one whose example drifted.
    bare = {"responses": {"200": {"content": {"application/json": {"schema": {"type": "object"}}}}}}
    drifted = {
        "summary": "s",
        "description": "d",
        "responses": {
            "400": {"content": {"application/problem+json": {}}},
            "200": {
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "properties": {"id": {}, "name": {}}},
                        "examples": {"R": {"value": {"id": "x", "nmae": "y"}}},
                    }
                }
            },
        },
    }

    assert {"no summary", "no description", "no problem+json error response", "no 200 response example"} <= set(
        operation_problems(bare)
    )
    assert operation_problems(drifted) == ["200 example: unknown key 'nmae'", "200 example: missing key 'name'"]
