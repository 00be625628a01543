"""The OpenAPI schema: valid, warning-free, complete, with error shapes; Swagger UI without a CDN."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db

RESOURCES = [
    "customers", "products", "prices", "coupons", "promotion_codes", "subscriptions", "invoice_items", "invoices",
    "credit_notes", "payment_methods", "payments", "refunds", "usage_events", "events", "webhook_endpoints",
    "test_clocks", "brands",
]  # fmt: skip
ACTIONS = [
    "/api/v1/subscriptions/preview",
    "/api/v1/subscriptions/{id}/preview_change",
    "/api/v1/subscriptions/{id}/change",
    "/api/v1/subscriptions/{id}/cancel",
    "/api/v1/subscriptions/{id}/pause",
    "/api/v1/subscriptions/{id}/resume",
    "/api/v1/subscriptions/{id}/preview_update",
    "/api/v1/invoices/{id}/finalize",
    "/api/v1/invoices/{id}/void",
    "/api/v1/invoices/{id}/pay",
    "/api/v1/invoices/{id}/pdf",
    "/api/v1/invoices/{id}/facturx",
    "/api/v1/invoices/upcoming",
    "/api/v1/test_clocks/{id}/advance",
    "/api/v1/customers/{id}/balance_transactions",
]


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.yml"
    with django_db_blocker.unblock():
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def test_every_resource_and_action_is_documented(schema):
    paths = schema["paths"]
    for resource in RESOURCES:
        assert f"/api/v1/{resource}" in paths and f"/api/v1/{resource}/{{id}}" in paths
    for action in ACTIONS:
        assert action in paths


def test_every_operation_documents_problem_errors_and_writes_take_idempotency_keys(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            for status in ("400", "401", "403", "404", "429"):
                content = operation["responses"][status]["content"]
                assert content["application/problem+json"]["schema"]["$ref"].endswith("/Problem"), (path, method)
            headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
            assert ("Idempotency-Key" in headers) == (method in ("post", "patch")), (path, method)
            assert operation["security"] == [{"ApiKey": []}], (path, method)


def test_usage_batch_request_and_result_are_described(schema):
    operation = schema["paths"]["/api/v1/usage_events"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("UsageBatchRequest")
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("UsageBatchResult")


def test_swagger_ui_serves_its_assets_locally(client):
    page = client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower() and "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    # The page has no inline script (our CSP allows only 'self'): the init script is a URL.
    assert "<script>" not in html.replace(" ", "")
    assert client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api/schema/").status_code == 200
