from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from config.api.keys import api_key_create


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Throttle history lives in the cache; primary keys repeat between tests on SQLite.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_key(db, staff_factory) -> Callable[..., tuple[object, str]]:
    owner = staff_factory(username="integrations")

    def make(*, scope: str = "read_write", mode: str = "live", name: str = "test key"):
        return api_key_create(name=name, scope=scope, mode=mode, created_by=owner)

    return make


def client_for(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def api(make_key) -> APIClient:
    _key, raw = make_key()
    return client_for(raw)


@pytest.fixture
def api_read(make_key) -> APIClient:
    _key, raw = make_key(scope="read")
    return client_for(raw)


@pytest.fixture
def sandbox_api(make_key) -> APIClient:
    _key, raw = make_key(mode="test")
    return client_for(raw)


@pytest.fixture
def billing_world(db, tax_rate, customer_factory, price_factory):
    """A French customer (20 % VAT) and a 29 EUR monthly price."""
    customer = customer_factory()
    price = price_factory(unit_amount=2900)
    return customer, price


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://") and body["title"] and body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body
