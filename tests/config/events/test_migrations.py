"""The event log moved from `billing` to `events` without touching its tables.

On PostgreSQL the move is replayed in a database of its own, migrated from empty up to the
move and then on to the head of every app whose migrations touch the event tables (billing,
events, feedback, customers, ops; contenttypes for the permissions): a few dozen migrations
in a small project state, instead of unapplying and reapplying everything after the move in
the test database with the whole project's state (dj-stripe's included), which took minutes.
SQLite (one in-memory test database) still does it in place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)
AT = datetime(2026, 3, 1, tzinfo=UTC)
BEFORE_THE_MOVE = [("events", None)]  # billing 0014 and feedback 0004 are unapplied with it
THE_MOVE = ("events", "0001_initial")
# Every migration that touches billing_domainevent / billing_eventcursor or their content types
# belongs to one of these apps (grep -il "domainevent\|eventcursor" */migrations */*/migrations).
APPS_OF_THE_EVENT_TABLES = ("events", "billing", "feedback", "customers", "ops", "contenttypes")


def columns(table: str) -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(cursor, table)
    return sorted((column.name, column.type_code) for column in description)


def indexes(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, table))


def migrate(targets):
    executor = MigrationExecutor(connection)
    return executor.migrate(targets or executor.loader.graph.leaf_nodes())


def leaves_of_the_event_tables(graph) -> list[tuple[str, str]]:
    return [key for key in graph.leaf_nodes() if key[0] in APPS_OF_THE_EVENT_TABLES]


def before_the_move_from_empty(graph) -> list[tuple[str, str]]:
    """The targets that apply, in an empty database, everything up to the move but not the move:
    of the ancestors of the event tables' heads that do not stand on the move's first migration,
    each app's last ones (those no migration of the same app among them follows)."""
    after_the_move = set(graph.backwards_plan(THE_MOVE))  # the move and everything standing on it
    before = {key for leaf in leaves_of_the_event_tables(graph) for key in graph.forwards_plan(leaf)} - after_the_move
    followed = {parent.key for key in before for parent in graph.node_map[key].parents if parent.key[0] == key[0]}
    return sorted(before - followed)


@contextmanager
def the_move_ahead() -> Iterator[tuple[list, list | None]]:
    """(targets before the move, targets after it) in the database the test moves."""
    if connection.vendor != "postgresql":
        try:
            yield BEFORE_THE_MOVE, None
        finally:
            migrate(None)  # whatever happened, leave the test database at the head
        return
    from django.contrib.contenttypes.models import ContentType

    creation = connection.creation
    original = connection.settings_dict["NAME"]
    own = f"{original}_event_move"
    with creation._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {creation._quote_name(own)}")
        cursor.execute(f"CREATE DATABASE {creation._quote_name(own)}")
    connection.close()
    connection.settings_dict["NAME"] = own
    try:
        graph = MigrationExecutor(connection).loader.graph
        yield before_the_move_from_empty(graph), leaves_of_the_event_tables(graph)
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original
        ContentType.objects.clear_cache()  # ids cached from the other database
        with creation._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {creation._quote_name(own)}")


def test_the_move_is_state_only_rows_indexes_and_permissions_stay():
    with the_move_ahead() as (before, after):
        old_state = migrate(before)
        old = old_state.apps
        event_columns, event_indexes = columns("billing_domainevent"), indexes("billing_domainevent")
        ContentType = old.get_model("contenttypes", "ContentType")
        ContentType.objects.get_or_create(app_label="billing", model="domainevent")
        old_type = ContentType.objects.get(app_label="billing", model="domainevent")
        event = old.get_model("billing", "DomainEvent").objects.create(
            type="invoice.finalized", object_type="invoice", object_id="7", occurred_at=AT, data={"n": 1}
        )
        old.get_model("billing", "EventCursor").objects.create(name="legacy", last_event_id=event.pk)

        migrate(after)

        from django.contrib.contenttypes.models import ContentType as LiveContentType

        from config.events.models import DomainEvent, EventCursor

        assert DomainEvent.objects.get(pk=event.pk).data == {"n": 1}
        assert EventCursor.objects.get(name="legacy").last_event_id == event.pk
        assert EventCursor.objects.get(name="legacy").gaps == []
        assert columns("billing_domainevent") == event_columns
        assert indexes("billing_domainevent") == event_indexes
        # The permissions granted on the old content type follow the model.
        assert LiveContentType.objects.get(pk=old_type.pk).app_label == "events"
        assert not LiveContentType.objects.filter(app_label="billing", model="domainevent").exists()
