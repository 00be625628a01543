"""Issue 20: the usage events' indexes valid on every partition.

An index of the partitioned `billing_usageevent` is a parent index with one index per
partition. Recreated from `pg_get_indexdef` (which reads `CREATE INDEX … ON ONLY parent`), as
bench/dataset.py did after its COPY until 7 December, it covers no partition and stays
INVALID: the planner ignores it, and the customer hub's usage panel scanned every event of the
legacy partition (0.8 s at 1,000,000 subscriptions). This migration drops each INVALID index of
the table and creates it again on the parent and all its partitions. Nothing to do on a
database migrated normally (0023 attaches the legacy table's indexes), nor on SQLite.
"""

from django.db import migrations

EVENTS = "billing_usageevent"


def rebuild_invalid_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = %s AND c.relkind = 'p' AND NOT i.indisvalid "
            "ORDER BY 1",
            [EVENTS],
        )
        for name, definition in cursor.fetchall():
            cursor.execute(f"DROP INDEX {name}")
            cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))


class Migration(migrations.Migration):
    dependencies = [("billing", "0026_rep23_payment_updated_at")]

    operations = [migrations.RunPython(rebuild_invalid_indexes, migrations.RunPython.noop, elidable=True)]
