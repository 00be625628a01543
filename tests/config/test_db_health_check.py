"""The health-check bypass window of the PostgreSQL backend (config/db/postgresql/base.py).

Each test drives a connection of its own through the life of requests as Django's request
signals do (`close_if_unusable_or_obsolete` when a request starts and ends; the test client
unhooks those signals, so they are called directly) and counts the `SELECT 1` checks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import OperationalError, connection, connections

from config.db.postgresql.base import DatabaseWrapper

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wrapper(postgres_only) -> Iterator[DatabaseWrapper]:
    fresh = connections.create_connection("default")
    assert isinstance(fresh, DatabaseWrapper)  # settings swap Django's engine for ours
    fresh.settings_dict = {**fresh.settings_dict, "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}
    checks = []
    real = fresh.is_usable

    def counted() -> bool:
        checks.append(1)
        return real()

    fresh.is_usable = counted  # type: ignore[method-assign]
    fresh.checks = checks  # type: ignore[attr-defined]
    yield fresh
    fresh.close()


def request(wrapper: DatabaseWrapper) -> int:
    """One request that reads: returns the backend pid it ran on."""
    wrapper.close_if_unusable_or_obsolete()
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]
    finally:
        wrapper.close_if_unusable_or_obsolete()


def kill(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.05)


def test_a_connection_used_a_moment_ago_is_not_checked_again(wrapper, settings):
    settings.TARIF_DB_HEALTH_CHECK_BYPASS_SECONDS = 60
    first = request(wrapper)  # a new connection is healthy: no check
    assert [request(wrapper) for _ in range(5)] == [first] * 5
    assert wrapper.checks == []


def test_window_zero_checks_before_every_request_as_django_does(wrapper, settings):
    settings.TARIF_DB_HEALTH_CHECK_BYPASS_SECONDS = 0
    request(wrapper)
    for _ in range(3):
        request(wrapper)
    assert len(wrapper.checks) == 3


def test_an_idle_connection_is_checked_once_the_window_has_passed(wrapper, settings):
    settings.TARIF_DB_HEALTH_CHECK_BYPASS_SECONDS = 0.2
    request(wrapper)
    request(wrapper)
    assert wrapper.checks == []
    time.sleep(0.3)
    request(wrapper)
    assert len(wrapper.checks) == 1


def test_a_request_that_did_not_touch_the_database_does_not_renew_the_window(wrapper, settings):
    settings.TARIF_DB_HEALTH_CHECK_BYPASS_SECONDS = 0.3
    request(wrapper)
    time.sleep(0.2)
    wrapper.close_if_unusable_or_obsolete()  # a request without a query
    wrapper.close_if_unusable_or_obsolete()
    time.sleep(0.2)
    request(wrapper)  # 0.4 s after the last use: checked
    assert len(wrapper.checks) == 1


def test_a_connection_killed_while_idle_is_replaced_before_use(wrapper, settings):
    settings.TARIF_DB_HEALTH_CHECK_BYPASS_SECONDS = 0.1
    first = request(wrapper)
    kill(first)
    time.sleep(0.2)
    second = request(wrapper)  # checked, found dead, reconnected: the request does not fail
    assert second != first and len(wrapper.checks) == 1


def test_the_trade_a_connection_killed_inside_the_window_fails_one_request_then_reconnects(wrapper, settings):
    # The negative control of the bypass: inside the window the dead connection is not checked,
    # so one request fails; Django then closes it and the next request gets a new one.
    settings.TARIF_DB_HEALTH_CHECK_BYPASS_SECONDS = 60
    first = request(wrapper)
    kill(first)
    with pytest.raises((OperationalError, psycopg.OperationalError)):
        request(wrapper)
    assert request(wrapper) != first
    assert wrapper.checks  # the failed request's error made Django check (and drop) the connection
