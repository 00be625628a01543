"""Billing migration 0023 builds the rollups of the events stored before issue 20. On PostgreSQL
it does so set-based (`fill_rollups_postgresql`: memory bounded whatever the table's size); its
buckets must be exactly the ones ingestion writes (`rollup_buckets`), properties hashed alike."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.models import UsageEvent, UsageRollup
from billing.services.usage_rollups import StoredEvent, rollup_buckets

migration = importlib.import_module("billing.migrations.0023_usage20_partitions_rollups")

FIELDS = ("customer_id", "meter_id", "day", "dimensions_hash", "properties", "event_count", "value_sum",
          "value_max", "last_timestamp", "last_event_id", "last_value")  # fmt: skip
PROPERTIES = [{}, {"region": "eu"}, {"model": "x", "region": "eu"}, {"region": "eu", "model": "x"},
              {"ville": "Zürich", "n": 2}, {"nested": {"b": 1, "a": [1, "é"]}}]  # fmt: skip


def _rows(rollups) -> set[tuple]:
    def value(rollup, field):
        found = getattr(rollup, field)
        return json.dumps(found, sort_keys=True) if field == "properties" else found

    return {tuple(value(rollup, field) for field in FIELDS) for rollup in rollups}


def test_the_set_based_backfill_writes_the_buckets_ingestion_writes(postgres_only, customer_factory, meter_factory):
    customers = [customer_factory(), customer_factory()]
    meters = [meter_factory(key="calls"), meter_factory(key="tokens")]
    start = datetime(2026, 3, 31, 22, 0, tzinfo=UTC)
    events = []
    for n in range(120):
        events.append(
            UsageEvent(
                customer=customers[n % 2],
                meter=meters[(n // 2) % 2],
                external_id=f"e{n}",
                value=Decimal(n % 7) + Decimal("0.25"),
                # several per hour across two UTC days and a month end; some at the same instant
                timestamp=start + timedelta(minutes=37 * (n // 3)),
                properties=PROPERTIES[n % len(PROPERTIES)],
            )
        )
    UsageEvent.objects.bulk_create(events)  # straight to the table: no rollups written
    UsageRollup.objects.all().delete()
    stored = UsageEvent.objects.order_by("pk").values_list(
        "pk", "customer_id", "meter_id", "timestamp", "value", "properties"
    )
    expected = rollup_buckets(events=[StoredEvent(*row) for row in stored])

    migration.fill_rollups_postgresql("billing_usageevent", "billing_usagerollup")

    written = _rows(UsageRollup.objects.all())
    assert written == _rows(expected)
    # same-content sets with keys in another order share one bucket, like ingestion's
    assert len({row[3] for row in written}) == len(PROPERTIES) - 1  # the two key orders are one set


def test_why_the_backfill_hashes_in_python_jsonb_text_is_not_the_canonical_json(postgres_only):
    # A backfill keyed on md5(properties::text) in SQL would make buckets ingestion never finds.
    from django.db import connection

    from billing.services.usage_rollups import dimensions_hash

    with connection.cursor() as cursor:
        cursor.execute("""SELECT md5('{"region": "eu", "model": "x"}'::jsonb::text)""")
        in_sql = cursor.fetchone()[0]
    assert in_sql != dimensions_hash({"region": "eu", "model": "x"})
    assert migration._dimensions_hash({"region": "eu", "model": "x"}) == dimensions_hash({"model": "x", "region": "eu"})
