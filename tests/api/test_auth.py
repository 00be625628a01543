"""Keys: hashed, scoped, revocable, rate limited; nothing staff-only is reachable with one."""

from __future__ import annotations

import pytest

from config.api.throttling import ApiKeyRateThrottle
from config.models import ApiKey, api_key_hash
from tests.api.conftest import assert_problem, client_for

pytestmark = pytest.mark.django_db


def test_key_is_stored_hashed_with_a_display_prefix(make_key):
    key, raw = make_key()

    stored = ApiKey.objects.get(pk=key.pk)
    assert raw.startswith("tk_live_") and len(raw) > 40
    assert stored.hashed_key == api_key_hash(raw) and raw not in stored.hashed_key
    assert stored.prefix == raw[:12]
    assert not ApiKey.objects.filter(hashed_key=raw).exists()


def test_no_key_and_a_wrong_key_are_refused_with_problem_json(client, billing_world):
    assert_problem(client.get("/api/v1/customers"), 401, "not_authenticated")
    assert_problem(client_for("tk_live_nope").get("/api/v1/customers"), 401, "authentication_failed")


def test_last_used_is_recorded(make_key):
    key, raw = make_key()

    client_for(raw).get("/api/v1/customers")

    key.refresh_from_db()
    assert key.last_used_at is not None


def test_read_only_key_reads_but_cannot_write(api_read, billing_world):
    customer, _price = billing_world

    assert api_read.get(f"/api/v1/customers/cus_{customer.pk}").status_code == 200
    response = api_read.post("/api/v1/customers", {"legal_name": "X", "email": "x@example.com", "country": "FR"})

    assert_problem(response, 403, "permission_denied")
    assert "read-only" in response.json()["detail"]


def test_revoked_key_is_refused(make_key):
    key, raw = make_key()
    client = client_for(raw)
    assert client.get("/api/v1/customers").status_code == 200

    key.revoke()

    body = assert_problem(client.get("/api/v1/customers"), 401)
    assert "revoked" in body["detail"]


def test_no_endpoint_exposes_keys_or_staff_data(api):
    # Keys, idempotency records, users and admin pages are not API resources.
    for path in ("/api/v1/api_keys", "/api/v1/keys", "/api/v1/users", "/api/v1/audit_log", "/api/v1/admin"):
        assert_problem(api.get(path), 404)
    assert api.get("/admin/").status_code == 302  # the console wants a staff login, a key is not one


def test_schema_does_not_mention_secrets():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert not [path for path in schema["paths"] if "key" in path or "user" in path or "audit" in path]
    assert "hashed" not in str(schema["components"]["schemas"])


def test_rate_limit_answers_429_with_retry_after(api, monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/minute"})

    statuses = [api.get("/api/v1/products").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    response = api.get("/api/v1/products")
    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_limits_are_per_key(make_key, monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "1/minute"})
    first, second = client_for(make_key()[1]), client_for(make_key()[1])

    assert first.get("/api/v1/products").status_code == 200
    assert first.get("/api/v1/products").status_code == 429
    assert second.get("/api/v1/products").status_code == 200


def test_test_clocks_need_a_sandbox_key(api, sandbox_api):
    body = {"name": "t", "frozen_time": "2026-01-01T00:00:00Z"}

    assert_problem(api.post("/api/v1/test_clocks", body, format="json"), 403)
    assert sandbox_api.post("/api/v1/test_clocks", body, format="json").status_code == 201
