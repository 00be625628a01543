"""Issue 13: TRUNCATE skips the append-only row trigger of 0001, so it is refused by a statement trigger.

Unless the session sets `tarif.allow_truncate = on` (Django's test flush, config/settings/test.py).
The application role has no TRUNCATE privilege at all (`manage.py db_roles`, docs/security.md).
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION tarif_refuse_truncate() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('tarif.allow_truncate', true), '') <> 'on' THEN
        RAISE EXCEPTION '% holds issued documents or their history: TRUNCATE refused', TG_TABLE_NAME
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tarif_refuse_truncate BEFORE TRUNCATE ON audit_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION tarif_refuse_truncate();
"""
BACKWARD = "DROP TRIGGER IF EXISTS tarif_refuse_truncate ON audit_auditentry;"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_reliability_audit_log")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
