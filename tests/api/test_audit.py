"""Every successful API write lands in the audit log, attributed to the key's owner."""

from __future__ import annotations

import pytest

from config.audit.models import AuditEntry
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db


def test_an_api_write_is_audited_with_key_owner_request_id_and_masked_secrets(make_key, brand):
    # given a read-write key
    key, raw = make_key()
    api = client_for(raw)

    # when an integrator creates a customer and a webhook endpoint (whose secret is shown once)
    created = api.post(
        "/api/v1/customers",
        {"legal_name": "Boulangerie Martin", "email": "compta@martin.example", "country": "FR"},
        format="json",
        HTTP_X_REQUEST_ID="req-audit-1",
    )
    endpoint = api.post("/api/v1/webhook_endpoints", {"url": "https://hooks.example.com/t"}, format="json")

    # then each write is one API entry naming the key's owner, the object and the request
    assert created.status_code == 201 and endpoint.status_code == 201
    entries = list(AuditEntry.objects.filter(channel=AuditEntry.Channel.API).order_by("pk"))
    assert len(entries) == 2
    customer_entry, endpoint_entry = entries
    assert customer_entry.actor == key.created_by
    assert customer_entry.target_id == created.json()["id"]
    assert customer_entry.method == "POST" and customer_entry.path == "/api/v1/customers"
    assert customer_entry.status_code == 201
    assert customer_entry.extra["api_key"] == key.prefix
    assert customer_entry.extra["request_body"]["legal_name"] == "Boulangerie Martin"
    assert customer_entry.after["legal_name"] == "Boulangerie Martin"
    # the signing secret returned once to the integrator never reaches the log
    secret = endpoint.json().get("secret")
    assert secret
    assert secret not in str(endpoint_entry.after) and secret not in str(endpoint_entry.extra)


def test_reads_and_refused_writes_are_not_audited_as_writes(make_key):
    _key, raw = make_key(scope="read")
    api = client_for(raw)

    api.get("/api/v1/customers")
    refused = api.post("/api/v1/customers", {"legal_name": "X"}, format="json")

    assert refused.status_code == 403
    assert not AuditEntry.objects.filter(channel=AuditEntry.Channel.API).exists()
