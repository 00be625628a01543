"""On PostgreSQL, the database itself refuses changes to a finalized invoice.

- invoices_invoice: once status leaves 'draft', the frozen columns cannot change
  (status, payments and timestamps still can), and the row cannot be deleted.
- invoices_invoiceline: no insert, update or delete on a line whose invoice is not a draft.
- invoices_creditnote / creditnoteline: issued documents cannot be edited or deleted
  (only status 'issued' -> 'void').
The model layer enforces the same rules on every database (invoices/services).
"""

from django.db import migrations

FROZEN = (
    "number", "customer_id", "brand_id", "currency", "subtotal", "discount_total", "tax_total", "total",
    "total_excluding_tax", "starting_balance_applied", "amount_due", "period_start", "period_end",
    "issued_snapshot", "tax_breakdown", "finalized_at", "subscription_id", "billing_reason",
)

FORWARD = """
CREATE OR REPLACE FUNCTION tarif_invoice_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'invoice % is finalized and cannot be deleted', OLD.number USING ERRCODE = 'P0001';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status <> 'draft' AND ({changed}) THEN
        RAISE EXCEPTION 'invoice % is finalized: its amounts and lines cannot change', OLD.number
            USING ERRCODE = 'P0001';
    END IF;
    IF OLD.status <> 'draft' AND NEW.status = 'draft' THEN
        RAISE EXCEPTION 'invoice % cannot go back to draft', OLD.number USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tarif_invoice_frozen BEFORE UPDATE OR DELETE ON invoices_invoice
    FOR EACH ROW EXECUTE FUNCTION tarif_invoice_frozen();

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

CREATE TRIGGER tarif_invoice_line_frozen BEFORE INSERT OR UPDATE OR DELETE ON invoices_invoiceline
    FOR EACH ROW EXECUTE FUNCTION tarif_invoice_line_frozen();

CREATE OR REPLACE FUNCTION tarif_credit_note_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'credit note % cannot be deleted', OLD.number USING ERRCODE = 'P0001';
    END IF;
    IF (OLD.number, OLD.total, OLD.subtotal, OLD.tax_total, OLD.invoice_id, OLD.customer_id,
        OLD.issued_snapshot::text, OLD.reduced_amount_due, OLD.credited_to_balance, OLD.refunded)
       IS DISTINCT FROM
       (NEW.number, NEW.total, NEW.subtotal, NEW.tax_total, NEW.invoice_id, NEW.customer_id,
        NEW.issued_snapshot::text, NEW.reduced_amount_due, NEW.credited_to_balance, NEW.refunded) THEN
        RAISE EXCEPTION 'credit note % is issued and cannot change', OLD.number USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tarif_credit_note_frozen BEFORE UPDATE OR DELETE ON invoices_creditnote
    FOR EACH ROW EXECUTE FUNCTION tarif_credit_note_frozen();

CREATE OR REPLACE FUNCTION tarif_credit_note_line_frozen() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'credit note lines cannot change once issued' USING ERRCODE = 'P0001';
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tarif_credit_note_line_frozen BEFORE UPDATE OR DELETE ON invoices_creditnoteline
    FOR EACH ROW EXECUTE FUNCTION tarif_credit_note_line_frozen();
""".replace(
    "{changed}",
    " OR ".join(
        f"OLD.{column}::text IS DISTINCT FROM NEW.{column}::text" if column in ("issued_snapshot", "tax_breakdown")
        else f"OLD.{column} IS DISTINCT FROM NEW.{column}"
        for column in FROZEN
    ),
)

BACKWARD = """
DROP TRIGGER IF EXISTS tarif_invoice_frozen ON invoices_invoice;
DROP FUNCTION IF EXISTS tarif_invoice_frozen();
DROP TRIGGER IF EXISTS tarif_invoice_line_frozen ON invoices_invoiceline;
DROP FUNCTION IF EXISTS tarif_invoice_line_frozen();
DROP TRIGGER IF EXISTS tarif_credit_note_frozen ON invoices_creditnote;
DROP FUNCTION IF EXISTS tarif_credit_note_frozen();
DROP TRIGGER IF EXISTS tarif_credit_note_line_frozen ON invoices_creditnoteline;
DROP FUNCTION IF EXISTS tarif_credit_note_line_frozen();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_initial")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
