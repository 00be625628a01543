"""The line trigger of 0002 read its invoice's status without a lock: a line inserted
while another transaction was finalizing the invoice saw 'draft', then (its foreign-key
check waiting for the finalization to commit) landed on the issued invoice. Reading
the status FOR SHARE waits for that transaction and then sees 'open', so the insert is
refused. A line whose invoice does not exist yet is still let through: the deferred
foreign key requires the invoice to be inserted by the same transaction before commit,
which is how the bulk issue path writes lines first (invoices/services/finalize.py).
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION tarif_invoice_line_frozen() RETURNS trigger AS $$
DECLARE
    parent_status text;
    parent_id bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN parent_id := OLD.invoice_id; ELSE parent_id := NEW.invoice_id; END IF;
    SELECT status INTO parent_status FROM invoices_invoice WHERE id = parent_id FOR SHARE;
    IF parent_status IS NOT NULL AND parent_status <> 'draft' THEN
        RAISE EXCEPTION 'lines of finalized invoice % cannot change', parent_id USING ERRCODE = 'P0001';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.invoice_id <> NEW.invoice_id THEN
        SELECT status INTO parent_status FROM invoices_invoice WHERE id = OLD.invoice_id FOR SHARE;
        IF parent_status <> 'draft' THEN
            RAISE EXCEPTION 'lines of finalized invoice % cannot move', OLD.invoice_id USING ERRCODE = 'P0001';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
"""

BACKWARD = """
CREATE OR REPLACE FUNCTION tarif_invoice_line_frozen() RETURNS trigger AS $$
DECLARE
    parent_status text;
    parent_id bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN parent_id := OLD.invoice_id; ELSE parent_id := NEW.invoice_id; END IF;
    SELECT status INTO parent_status FROM invoices_invoice WHERE id = parent_id;
    IF parent_status IS NOT NULL AND parent_status <> 'draft' THEN
        RAISE EXCEPTION 'lines of finalized invoice % cannot change', parent_id USING ERRCODE = 'P0001';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.invoice_id <> NEW.invoice_id THEN
        SELECT status INTO parent_status FROM invoices_invoice WHERE id = OLD.invoice_id;
        IF parent_status <> 'draft' THEN
            RAISE EXCEPTION 'lines of finalized invoice % cannot move', OLD.invoice_id USING ERRCODE = 'P0001';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
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
    dependencies = [("invoices", "0002_finalized_invoices_are_frozen")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
