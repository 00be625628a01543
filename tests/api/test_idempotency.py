"""Idempotency-Key: replay for 24 hours, refusal on a different request, one run for concurrent requests."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import Product
from config.models import IdempotencyRecord
from customers.models import Customer
from tests.api.conftest import assert_problem, client_for

pytestmark = pytest.mark.django_db

BODY = {"legal_name": "Idem SAS", "email": "idem@example.com", "country": "FR"}


def test_the_first_response_is_replayed(api, brand):
    first = api.post("/api/v1/customers", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = api.post("/api/v1/customers", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Customer.objects.count() == 1


def test_errors_are_replayed_too(api):
    first = api.post("/api/v1/products", {"name": ""}, format="json", HTTP_IDEMPOTENCY_KEY="k-err")
    second = api.post("/api/v1/products", {"name": ""}, format="json", HTTP_IDEMPOTENCY_KEY="k-err")

    assert first.status_code == second.status_code == 400
    assert second.json() == first.json() and second["Content-Type"].startswith("application/problem+json")


def test_same_key_with_another_body_or_path_is_refused(api, brand):
    api.post("/api/v1/customers", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    other_body = api.post(
        "/api/v1/customers", {**BODY, "email": "x@example.com"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    other_path = api.post("/api/v1/products", {"name": "P"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    for response in (other_body, other_path):
        body = assert_problem(response, 422, "idempotency_key_reused")
        assert body["field"] == "Idempotency-Key"
    assert Customer.objects.count() == 1 and not Product.objects.exists()


def test_keys_belong_to_one_api_key(make_key):
    one, two = client_for(make_key()[1]), client_for(make_key()[1])

    one.post("/api/v1/products", {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    two.post("/api/v1/products", {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="shared")

    assert Product.objects.count() == 2


def test_a_record_older_than_24_hours_is_forgotten(api):
    api.post("/api/v1/products", {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=24, minutes=1))

    again = api.post("/api/v1/products", {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="old")

    assert again.status_code == 201 and not again.has_header("Idempotent-Replayed")
    assert Product.objects.count() == 2


def test_an_overlong_key_is_refused(api):
    assert_problem(
        api.post("/api/v1/products", {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256),
        400,
        "invalid_idempotency_key",
    )


def test_get_ignores_the_header(api):
    assert api.get("/api/v1/products", HTTP_IDEMPOTENCY_KEY="k").status_code == 200
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_run_once(make_key, brand, postgres_only):
    assert connection.vendor == "postgresql"
    _key, raw = make_key()
    results: list = []
    start = threading.Barrier(6)

    def post() -> None:
        try:
            start.wait()
            response = client_for(raw).post("/api/v1/customers", BODY, format="json", HTTP_IDEMPOTENCY_KEY="race")
            results.append((response.status_code, response.json()["id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 6
    assert {status for status, _id in results} == {201}
    assert len({customer_id for _status, customer_id in results}) == 1
    assert Customer.objects.count() == 1


def test_the_hourly_task_purges_expired_records(api):
    from config.tasks import idempotency_records_purge

    api.post("/api/v1/products", {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="old")
    api.post("/api/v1/products", {"name": "B"}, format="json", HTTP_IDEMPOTENCY_KEY="new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))

    assert idempotency_records_purge.delay().get() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
