from __future__ import annotations

import pytest

from billing.models import WebhookEndpoint
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def test_create_shows_the_secret_once(api):
    created = api.post(
        "/api/v1/webhook_endpoints",
        {"url": "https://hooks.example.com/tarif", "enabled_events": ["invoice.*"]},
        format="json",
    )

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["id"].startswith("we_") and body["secret"].startswith("whsec_")
    assert body["secret"] == WebhookEndpoint.objects.get().secret
    fetched = api.get(f"/api/v1/webhook_endpoints/{body['id']}").json()
    assert "secret" not in fetched and "secret" not in str(api.get("/api/v1/webhook_endpoints").json())

    rolled = api.post(f"/api/v1/webhook_endpoints/{body['id']}/roll_secret").json()
    assert rolled["secret"] != body["secret"]

    updated = api.patch(f"/api/v1/webhook_endpoints/{body['id']}", {"enabled_events": ["*"]}, format="json")
    assert updated.json()["enabled_events"] == ["*"]
    assert api.delete(f"/api/v1/webhook_endpoints/{body['id']}").status_code == 204
    assert WebhookEndpoint.objects.get().active is False


@pytest.mark.parametrize(
    "body", [{"url": "not a url"}, {"url": "https://x.example", "enabled_events": "invoice.*"}, {}]
)
def test_bad_endpoints_are_400(api, body):
    assert_problem(api.post("/api/v1/webhook_endpoints", body, format="json"), 400)


def test_the_secret_is_encrypted_at_rest(api):
    from django.db import connection

    api.post("/api/v1/webhook_endpoints", {"url": "https://hooks.example.com/x"}, format="json")
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM billing_webhookendpoint")
        [(stored,)] = cursor.fetchall()

    assert not stored.startswith("whsec_")
