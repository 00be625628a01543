"""API keys in the console: created by staff, the secret shown once, revocable."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from rest_framework.test import APIClient

from config.models import ApiKey

pytestmark = pytest.mark.django_db


def test_staff_create_a_key_see_it_once_and_revoke_it(console):
    response = console.post(
        "/admin/config/apikey/add/", {"name": "CRM sync", "scope": "read_write", "mode": "live"}, follow=True
    )

    assert response.status_code == 200
    shown = [str(message) for message in get_messages(response.wsgi_request)] or [response.content.decode()]
    match = re.search(r"tk_live_[A-Za-z0-9_\-]+", " ".join(shown) + response.content.decode())
    assert match, "the new key is shown in the confirmation"
    raw = match.group(0)
    key = ApiKey.objects.get()
    assert key.created_by == console.user and key.prefix == raw[:12] and raw not in key.hashed_key
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/customers").status_code == 200

    detail = console.get(f"/admin/config/apikey/{key.pk}/change/").content.decode()
    assert raw not in detail and key.prefix in detail
    console.post("/admin/config/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True)

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api.get("/api/v1/customers").status_code == 401


def test_keys_cannot_be_deleted(console):
    console.post("/admin/config/apikey/add/", {"name": "K", "scope": "read", "mode": "test"})
    key = ApiKey.objects.get()

    assert console.get(f"/admin/config/apikey/{key.pk}/delete/").status_code == 403
    assert key.mode == "test"
