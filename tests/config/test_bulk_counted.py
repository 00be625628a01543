"""Query guards count every statement (issue 20): a COPY and the usage ingestion's array
statements run through Django's cursor machinery, so `CaptureQueriesContext` and pytest-django's
`django_assert_max_num_queries` see them (they used to run on psycopg's own cursor, unseen)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import UsageEvent, UsageRollup
from billing.services.usage import usage_events_insert
from config.events.log import EventRow, events_record_bulk
from config.events.models import DomainEvent

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")

ROOT = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("billing", "invoices", "customers", "reports", "feedback", "config")
# psycopg's cursor reached around Django's wrapper: nothing logs or wraps what runs on it.
BYPASS = re.compile(r"connection\.connection\b|\bcursor\.cursor\b|\.copy\(\s*f?[\"']COPY")


def _event(n: int) -> EventRow:
    return EventRow(
        type="test.counted",
        object_type="test",
        object_id=n,
        customer_id=None,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        data={"n": n},
        livemode=True,
    )


def _statements(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"].split(None, 1)[0].upper() for query in queries.captured_queries]


@postgresql_only
def test_a_copy_is_one_statement_for_the_query_guards(django_assert_max_num_queries):
    with CaptureQueriesContext(connection) as queries:
        events_record_bulk(rows=[_event(1), _event(2)])

    assert _statements(queries) == ["COPY"]
    assert DomainEvent.objects.filter(type="test.counted").count() == 2
    # Negative control: a budget of no query fails on the COPY alone.
    with pytest.raises(pytest.fail.Exception, match="but 1 was done"), django_assert_max_num_queries(0):
        events_record_bulk(rows=[_event(3)])


@postgresql_only
def test_execute_wrappers_see_the_copy():
    seen: list[str] = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        events_record_bulk(rows=[_event(1)])

    assert len(seen) == 1 and seen[0].startswith('COPY "billing_domainevent"')


@postgresql_only
def test_usage_ingestion_statements_are_all_counted(customer_factory, meter_factory, django_assert_max_num_queries):
    customer, meter = customer_factory(), meter_factory()

    def rows(prefix: str) -> list[UsageEvent]:
        return [
            UsageEvent(
                customer_id=customer.pk,
                meter_id=meter.pk,
                external_id=f"{prefix}{n}",
                value=Decimal(2),
                timestamp=datetime(2026, 1, 1 + n, tzinfo=UTC),
                properties={"region": "eu"},
            )
            for n in range(3)
        ]

    with CaptureQueriesContext(connection) as queries:
        stored = usage_events_insert(rows=rows("a"))

    # The dedup keys, the ids, the events, the daily rollups, the month rollups (issue 20 item 7):
    # five statements (only the ids were seen before).
    assert _statements(queries) == ["INSERT", "SELECT", "COPY", "INSERT", "INSERT"]
    assert [event.pk is not None for event in stored] == [True] * 3
    assert sum(UsageRollup.objects.values_list("event_count", flat=True)) == 3
    # Negative control: one statement fewer than the ingestion runs fails the guard.
    with pytest.raises(pytest.fail.Exception), django_assert_max_num_queries(4):
        usage_events_insert(rows=rows("b"))


def _bypasses(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if BYPASS.search(line) and not line.lstrip().startswith("#")]


def test_no_application_code_runs_sql_around_django_s_cursor_wrapper():
    # config/bulk.py is the one place that reaches psycopg's cursor, and it counts what it runs.
    found = {
        str(path.relative_to(ROOT)): _bypasses(path.read_text())
        for package in APP_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path != ROOT / "config" / "bulk.py" and "migrations" not in path.parts
    }
    assert {path: lines for path, lines in found.items() if lines} == {}


def test_the_bypass_scan_finds_each_kind_of_bypass():
    # Negative control of the scan above.
    assert _bypasses("with connection.connection.cursor() as cursor:")
    assert _bypasses("cursor.cursor.copy(statement)")
    assert _bypasses('with raw.copy(f"COPY {table} FROM STDIN") as copy:')
    assert not _bypasses("with connection.cursor() as cursor:")
    assert not _bypasses("copied = copy.copy(discount)")


@postgresql_only
def test_the_copy_of_events_writes_what_the_orm_path_writes(customer_factory, monkeypatch):
    """The COPY path writes plain tuples: every column the model has must be in it, with the
    values the ORM's bulk_create path (SQLite's) gives, mode and payload included."""
    from decimal import Decimal

    from config.events import log

    sandbox = customer_factory(livemode=False)
    rows = [
        EventRow(
            type="test.same",
            object_type="invoice",
            object_id=7,
            customer_id=sandbox.pk,
            occurred_at=datetime(2026, 1, 1, 12, tzinfo=UTC),
            data={"amount": Decimal("1.50"), "when": datetime(2026, 1, 2, tzinfo=UTC), "empty": {}},
        ),
        _event(8),
    ]
    written_columns = {field.column for field in DomainEvent._meta.concrete_fields if not field.primary_key}
    assert set(log._COPY_COLUMNS) == written_columns  # a new column must be added to the COPY

    log.events_record_bulk(rows=rows)
    monkeypatch.setattr(log, "copy_supported", lambda: False)
    log.events_record_bulk(rows=rows)

    fields = ("type", "object_type", "object_id", "customer_id", "data", "acting_user_id", "occurred_at", "livemode")
    copied, created = (
        list(DomainEvent.objects.filter(pk__in=ids).order_by("pk").values_list(*fields))
        for ids in (
            DomainEvent.objects.filter(type__in=["test.same", "test.counted"]).order_by("pk").values_list("pk")[:2],
            DomainEvent.objects.filter(type__in=["test.same", "test.counted"]).order_by("pk").values_list("pk")[2:],
        )
    )
    assert copied == created
    assert copied[0][4] == {"amount": "1.50", "when": "2026-01-02T00:00:00Z", "empty": {}}
    assert [row[-1] for row in copied] == [False, True]  # the sandbox customer's mode, then the row's own
    assert DomainEvent.objects.filter(type="test.same", created_at__isnull=True).count() == 0
