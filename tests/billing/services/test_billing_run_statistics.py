"""The billing run analyses the tables it grows while their statistics describe a much smaller table."""

from __future__ import annotations

import pytest
from django.db import connection

from billing.services.billing_run import STATISTICS_SETTLED_PAGES, _statistics_refresh_if_outgrown

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgres_only")]


def _pages_in_statistics(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpages FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0]


def _add_events(count: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO billing_domainevent (type, object_type, object_id, data, occurred_at, created_at, livemode)"
            " SELECT 'invoice.finalized', 'invoice', n::text, jsonb_build_object('n', n), now(), now(), true"
            " FROM generate_series(1, %s) AS n",
            [count],
        )


def test_a_table_that_outgrew_its_statistics_is_analysed_once():
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_domainevent")
    pages = _pages_in_statistics("billing_domainevent")
    if pages >= STATISTICS_SETTLED_PAGES // 2:
        pytest.skip("the test database's event table is already large")

    # ~60 events fill an 8 kB page: this more than doubles the table and passes 8 pages.
    _add_events(60 * (2 * pages + 12))
    analysed = _statistics_refresh_if_outgrown()

    assert "billing_domainevent" in analysed
    assert _pages_in_statistics("billing_domainevent") > 2 * pages
    # negative control: statistics that describe the table are left alone
    assert "billing_domainevent" not in _statistics_refresh_if_outgrown()


def test_a_table_whose_statistics_say_it_is_large_is_left_to_autovacuum():
    _add_events(1000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_domainevent")
        # As if a production-sized table had been analysed at STATISTICS_SETTLED_PAGES pages.
        cursor.execute(
            "UPDATE pg_class SET relpages = %s WHERE oid = 'billing_domainevent'::regclass",
            [STATISTICS_SETTLED_PAGES],
        )
    _add_events(60 * 4 * STATISTICS_SETTLED_PAGES)

    assert "billing_domainevent" not in _statistics_refresh_if_outgrown()
