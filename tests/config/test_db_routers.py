"""The read-replica router (config/db_routers.py): explicit opt-in, a lag guard, writes on the primary.

These run on SQLite or PostgreSQL without a replica (the guard's probe is replaced); the
streaming replica itself is exercised in tests/config/test_replica_streaming.py."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import OperationalError, transaction

from config import db_routers
from config.db_routers import REPLICA, ReplicaRouter, current_read_alias, replica_state_reset, use_replica
from customers.models import Customer


@pytest.fixture
def fake_replica(monkeypatch, settings):
    """A configured replica whose lag the test sets (None: it does not answer)."""
    settings.TARIF_REPLICA_ENABLED = True
    settings.TARIF_REPLICA_MAX_LAG_SECONDS = 10
    settings.TARIF_REPLICA_CHECK_SECONDS = 5
    state = {"lag": 0.0, "probes": 0}

    def probe(*, alias: str = REPLICA) -> float:
        state["probes"] += 1
        if state["lag"] is None:
            raise OperationalError("connection refused")
        return state["lag"]

    monkeypatch.setattr(db_routers, "replica_configured", lambda: True)
    monkeypatch.setattr(db_routers, "replica_lag_seconds", probe)
    replica_state_reset()
    yield state
    replica_state_reset()


def fallbacks(reason: str) -> float:
    return db_routers.REPLICA_FALLBACKS.labels(reason=reason)._value.get()


def test_without_a_replica_every_read_stays_on_the_primary():
    with use_replica() as alias:
        assert alias == "default" and current_read_alias() == "default"
    assert ReplicaRouter().db_for_read(Customer) is None


def test_nothing_reads_the_replica_outside_an_explicit_block(fake_replica):
    router = ReplicaRouter()

    assert router.db_for_read(Customer) is None
    with use_replica() as alias:
        assert alias == REPLICA and router.db_for_read(Customer) == REPLICA
    assert router.db_for_read(Customer) is None and current_read_alias() == "default"


def test_a_replica_within_the_allowed_lag_is_used_and_the_verdict_is_cached(fake_replica):
    fake_replica["lag"] = 9.5

    for _ in range(3):
        with use_replica() as alias:
            assert alias == REPLICA
    assert fake_replica["probes"] == 1  # cached for TARIF_REPLICA_CHECK_SECONDS


def test_a_lagging_replica_sends_reads_to_the_primary_and_counts_it(fake_replica, settings):
    settings.TARIF_REPLICA_CHECK_SECONDS = 0  # check at every block
    fake_replica["lag"] = 12.0
    before = fallbacks("lag")

    with use_replica() as alias:
        assert alias == "default"
    assert fallbacks("lag") == before + 1

    fake_replica["lag"] = 0.2  # caught up again: back to the replica
    with use_replica() as alias:
        assert alias == REPLICA


def test_a_replica_that_does_not_answer_sends_reads_to_the_primary(fake_replica, caplog):
    fake_replica["lag"] = None
    before = fallbacks("down")

    with use_replica() as alias:
        assert alias == "default"
    assert fallbacks("down") == before + 1
    assert "replica: unavailable" in caplog.text


def test_the_replica_can_be_switched_off(fake_replica, settings):
    settings.TARIF_REPLICA_ENABLED = False

    with use_replica() as alias:
        assert alias == "default"
    assert fake_replica["probes"] == 0


@pytest.mark.django_db
def test_inside_a_transaction_of_the_primary_reads_stay_there(fake_replica):
    """Read-your-writes: rows this transaction wrote exist on the primary only."""
    with transaction.atomic():
        with use_replica() as alias:
            assert alias == "default"
    assert fake_replica["probes"] == 0


def test_nested_blocks_keep_the_outer_choice(fake_replica, settings):
    settings.TARIF_REPLICA_CHECK_SECONDS = 0
    with use_replica() as outer:
        fake_replica["lag"] = 60.0
        with use_replica() as inner:
            assert outer == inner == REPLICA
        assert current_read_alias() == REPLICA
    assert fake_replica["probes"] == 1


def test_the_decorator_form_opts_a_function_in(fake_replica):
    @use_replica()
    def read() -> str:
        return current_read_alias()

    assert read() == REPLICA and read() == REPLICA
    assert current_read_alias() == "default"


def test_writes_and_migrations_never_go_to_the_replica():
    router = ReplicaRouter()
    from_replica = Customer(legal_name="Copy")
    from_replica._state.db = REPLICA
    fresh = Customer(legal_name="New")

    assert router.db_for_write(Customer, instance=from_replica) == "default"
    assert router.db_for_write(Customer, instance=fresh) is None  # Django's default: the primary
    assert router.allow_migrate(REPLICA, "customers") is False
    assert router.allow_migrate("default", "customers") is None
    primary_copy = Customer(legal_name="Primary")
    primary_copy._state.db = "default"
    assert router.allow_relation(from_replica, primary_copy) is True


@pytest.mark.django_db
def test_an_object_read_in_a_replica_block_is_saved_on_the_primary(fake_replica, customer):
    # Without a second database here the block's reads go to `default` as the router says; what
    # matters is where the save goes once the object carries the replica as its origin.
    loaded = Customer.objects.get(pk=customer.pk)
    loaded._state.db = REPLICA
    assert ReplicaRouter().db_for_write(Customer, instance=loaded) == "default"


@pytest.mark.django_db
def test_the_api_lists_and_only_the_lists_ask_for_the_replica(monkeypatch, client, customer, staff_factory):
    from config.api.keys import api_key_create
    from tests.api.conftest import client_for

    _key, raw = api_key_create(name="k", scope="read_write", mode="live", created_by=staff_factory(username="ops"))
    api = client_for(raw)
    asked = []
    monkeypatch.setattr(db_routers, "replica_alias_for_read", lambda: asked.append(1) or "default")

    assert api.get("/api/v1/customers").status_code == 200
    assert len(asked) == 1
    assert api.get(f"/api/v1/customers/cus_{customer.pk}").status_code == 200
    assert api.post("/api/v1/products", {"name": "P"}, format="json").status_code == 201
    assert len(asked) == 1  # a detail read and a write stay on the primary
    assert current_read_alias() == "default"  # the block ended with the request


@pytest.mark.django_db
def test_reports_read_through_the_replica_block(monkeypatch):
    from reports.filters import ReportFilters
    from reports.registry import REPORTS

    asked = []
    monkeypatch.setattr(db_routers, "replica_alias_for_read", lambda: asked.append(1) or "default")

    table = REPORTS["billed"].build(ReportFilters(start=date(2026, 1, 1), end=date(2026, 3, 1)))

    assert asked == [1] and table.as_of is not None


@pytest.mark.django_db
def test_the_console_exports_read_through_the_replica_block(monkeypatch, console, customer_factory):
    customer_factory(legal_name="Exported SAS")
    asked = []
    monkeypatch.setattr(db_routers, "replica_alias_for_read", lambda: asked.append(1) or "default")

    listed = console.get("/admin/customers/customer/")
    assert listed.status_code == 200 and asked == []  # the list page itself reads the primary
    response = console.post(
        "/admin/customers/customer/export/",
        {"format": "0", "resource": "0", "customerresource_legal_name": "on"},
    )

    assert response.status_code == 200 and "Exported SAS" in response.content.decode()
    assert asked == [1]
