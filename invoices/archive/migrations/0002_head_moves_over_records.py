"""The archive chain head may move over several records in one UPDATE (a batch of e-invoice
transmissions is archived with one head update instead of one per record), still never past a
record that is not there: every sequence it moves over must exist in its mode's chain, and it
must stop on the hash of the last one. Before, it moved one record at a time (0001)."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION tarif_archive_head_forward() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'archive chain head cannot be deleted' USING ERRCODE = 'P0001';
    END IF;
    IF NEW.livemode IS DISTINCT FROM OLD.livemode OR NEW.last_sequence <= OLD.last_sequence THEN
        RAISE EXCEPTION 'archive chain head only moves forward' USING ERRCODE = 'P0001';
    END IF;
    IF (
        SELECT count(*) FROM archive_archiverecord
        WHERE livemode = NEW.livemode AND sequence > OLD.last_sequence AND sequence <= NEW.last_sequence
    ) <> NEW.last_sequence - OLD.last_sequence
    OR NEW.last_hash IS DISTINCT FROM (
        SELECT record_hash FROM archive_archiverecord WHERE livemode = NEW.livemode AND sequence = NEW.last_sequence
    ) THEN
        RAISE EXCEPTION 'archive chain head only moves forward over appended records, to the last one''s hash'
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
"""

BACKWARD = """
CREATE OR REPLACE FUNCTION tarif_archive_head_forward() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'archive chain head cannot be deleted' USING ERRCODE = 'P0001';
    END IF;
    IF NEW.livemode IS DISTINCT FROM OLD.livemode OR NEW.last_sequence <> OLD.last_sequence + 1 THEN
        RAISE EXCEPTION 'archive chain head only moves forward by one record' USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("archive", "0001_ereport_initial")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
