"""Reads through a real streaming replica (issue 20): reports go to it, and the lag guard sends
them back to the primary when replay stops.

Needs DATABASE_REPLICA_URL naming a hot standby of DATABASE_URL's server (scripts/start-replica;
.ci/run starts one). The test database is created on the primary and replayed on the replica."""

from __future__ import annotations

import time
from datetime import date

import pytest
from django.conf import settings
from django.db import connections
from django.test.utils import CaptureQueriesContext

from config import db_routers
from config.db_routers import REPLICA, read_connection, replica_lag_seconds, replica_state_reset, use_replica
from customers.models import Customer
from reports.filters import ReportFilters
from reports.registry import REPORTS

if REPLICA not in settings.DATABASES:  # the marker below names the alias, which must exist
    pytest.skip("needs a streaming replica: set DATABASE_REPLICA_URL (scripts/start-replica)", allow_module_level=True)

pytestmark = [
    pytest.mark.replica,
    pytest.mark.django_db(transaction=True, databases=["default", "replica"]),
]


@pytest.fixture
def replica_on(settings):
    settings.TARIF_REPLICA_ENABLED = True
    settings.TARIF_REPLICA_MAX_LAG_SECONDS = 10
    settings.TARIF_REPLICA_CHECK_SECONDS = 0
    replica_state_reset()
    yield
    replica_state_reset()


def scalar(alias: str, sql: str, params: list | None = None):
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchone()[0]


def wait_until(condition, *, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the replica did not get there in time")
        time.sleep(0.05)


def primary_lsn() -> str:
    """Where the primary has inserted WAL so far, commits included.

    Not pg_current_wal_lsn(): that is the *written* position, and with synchronous_commit=off (CI's
    primary) a commit that has returned may still sit in the WAL buffers beyond it, so a replica
    caught up to it can miss the row (CI run of 7 Dec 2026)."""
    return scalar("default", "SELECT pg_current_wal_insert_lsn()::text")


def wait_for_replay() -> None:
    """Until the replica has replayed everything the primary has written so far."""
    lsn = primary_lsn()
    wait_until(lambda: scalar(REPLICA, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]))


def fallbacks(reason: str) -> float:
    return db_routers.REPLICA_FALLBACKS.labels(reason=reason)._value.get()


def test_the_replica_is_a_hot_standby_of_the_primary(replica_on):
    assert scalar(REPLICA, "SELECT pg_is_in_recovery()") is True
    assert scalar("default", "SELECT pg_is_in_recovery()") is False
    assert scalar(REPLICA, "SELECT current_database()") == scalar("default", "SELECT current_database()")


def test_a_report_reads_the_replica_and_sees_what_the_primary_committed(replica_on, customer_factory):
    # Given a customer committed on the primary and replayed on the replica
    customer = customer_factory(legal_name="Replayed SAS")
    wait_for_replay()

    # When a report is built and a replica block reads the customer
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_primary,
    ):
        table = REPORTS["billed"].build(ReportFilters(start=date(2026, 1, 1), end=date(2026, 3, 1)))
        with use_replica() as alias:
            reader = read_connection()
            with reader.cursor() as cursor:
                cursor.execute("SELECT pg_is_in_recovery()")
                in_recovery = cursor.fetchone()[0]
            seen = Customer.objects.filter(pk=customer.pk).values_list("legal_name", flat=True).first()

    # Then every read went to the replica, which is a server in recovery, and saw the commit
    assert table.as_of is not None
    assert alias == REPLICA and reader.alias == REPLICA and in_recovery is True
    assert seen == "Replayed SAS"
    assert on_replica.captured_queries and not on_primary.captured_queries


def test_a_write_inside_a_replica_block_goes_to_the_primary(replica_on, customer_factory):
    customer = customer_factory(legal_name="Before")
    wait_for_replay()

    with use_replica():
        loaded = Customer.objects.get(pk=customer.pk)
        assert loaded._state.db == REPLICA
        loaded.legal_name = "After"
        loaded.save(update_fields=["legal_name"])

    assert Customer.objects.using("default").get(pk=customer.pk).legal_name == "After"


def test_the_lag_guard_falls_back_to_the_primary_when_replay_stops(replica_on, settings, customer_factory):
    settings.TARIF_REPLICA_MAX_LAG_SECONDS = 1
    customer_factory(legal_name="Replayed first")
    wait_for_replay()
    with use_replica() as alias:
        assert alias == REPLICA  # caught up: the guard lets reads through

    scalar(REPLICA, "SELECT pg_wal_replay_pause()::text")
    try:
        wait_until(lambda: scalar(REPLICA, "SELECT pg_get_wal_replay_pause_state()") == "paused")
        # Given a commit the replica receives but does not replay, for longer than the threshold
        late = customer_factory(legal_name="Written while replay is paused")
        lsn = primary_lsn()
        wait_until(lambda: scalar(REPLICA, "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", [lsn]))
        time.sleep(1.2)
        before = fallbacks("lag")

        # When a report path opens a replica block
        with use_replica() as alias:
            seen = Customer.objects.filter(pk=late.pk).exists()

        # Then the guard measured the lag, picked the primary (which has the row) and counted it
        assert replica_lag_seconds() > 1
        assert not Customer.objects.using(REPLICA).filter(pk=late.pk).exists()  # the replica is behind
        assert alias == "default" and seen
        assert fallbacks("lag") == before + 1
    finally:
        scalar(REPLICA, "SELECT pg_wal_replay_resume()::text")

    wait_for_replay()
    with use_replica() as alias:
        assert alias == REPLICA  # replayed again: back to the replica
