"""The event log moved from `billing` to `events` without touching its tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)
AT = datetime(2026, 3, 1, tzinfo=UTC)
BEFORE_THE_MOVE = [("events", None)]  # billing 0014 and feedback 0003 are unapplied with it


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


def test_the_move_is_state_only_rows_indexes_and_permissions_stay():
    try:
        old_state = migrate(BEFORE_THE_MOVE)
        old = old_state.apps
        event_columns, event_indexes = columns("billing_domainevent"), indexes("billing_domainevent")
        ContentType = old.get_model("contenttypes", "ContentType")
        ContentType.objects.get_or_create(app_label="billing", model="domainevent")
        old_type = ContentType.objects.get(app_label="billing", model="domainevent")
        event = old.get_model("billing", "DomainEvent").objects.create(
            type="invoice.finalized", object_type="invoice", object_id="7", occurred_at=AT, data={"n": 1}
        )
        old.get_model("billing", "EventCursor").objects.create(name="legacy", last_event_id=event.pk)

        migrate(None)
    finally:
        migrate(None)  # whatever happened, leave the test database at the head

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
