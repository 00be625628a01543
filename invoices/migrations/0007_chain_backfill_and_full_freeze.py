"""Issue 13: issued documents are chained, every frozen column is frozen, and TRUNCATE is refused.

- Documents issued before the hash chain existed are linked in number order (the key is
  the application's, invoices/chain.py), before the triggers below freeze the chain columns.
- invoices_invoice: the freeze now also covers what finalization sets and the documents
  print or rely on: due_at, collection_method, language, content_hash and the chain.
- invoices_creditnote: every issued column (CREDIT_NOTE_FROZEN_FIELDS), status only issued -> void.
- invoices_numbersequence: the counter never goes back and rows are not deleted; the
  chain head and the last issue time only move with the counter.
- TRUNCATE (which skips row triggers) is refused on the invoices, their lines, credit
  notes and their lines, and the number sequences, unless the session sets
  `tarif.allow_truncate = on` (Django's test flush; see config/settings/test.py). The
  application role has no TRUNCATE privilege at all (docs/security.md, `manage.py db_roles`).
"""

from django.db import migrations

INVOICE_FROZEN = (
    "number", "customer_id", "brand_id", "currency", "subtotal", "discount_total", "tax_total", "total",
    "total_excluding_tax", "starting_balance_applied", "amount_due", "period_start", "period_end",
    "issued_snapshot", "tax_breakdown", "finalized_at", "subscription_id", "billing_reason",
    "due_at", "collection_method", "language", "content_hash", "chain_previous", "chain_hash",
)
CREDIT_NOTE_FROZEN = (
    "invoice_id", "brand_id", "customer_id", "number", "reason", "memo", "currency", "subtotal", "tax_total",
    "total", "reduced_amount_due", "credited_to_balance", "refunded", "tax_breakdown", "issued_snapshot",
    "issued_at", "content_hash", "chain_previous", "chain_hash",
)
JSON_COLUMNS = ("issued_snapshot", "tax_breakdown")
TRUNCATE_GUARDED = (
    "invoices_invoice", "invoices_invoiceline", "invoices_creditnote", "invoices_creditnoteline",
    "invoices_numbersequence",
)


def _changed(columns):
    return " OR ".join(
        f"OLD.{column}::text IS DISTINCT FROM NEW.{column}::text" if column in JSON_COLUMNS
        else f"OLD.{column} IS DISTINCT FROM NEW.{column}"
        for column in columns
    )


FORWARD = (
    """
CREATE OR REPLACE FUNCTION tarif_invoice_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'invoice % is finalized and cannot be deleted', OLD.number USING ERRCODE = 'P0001';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status <> 'draft' AND ({invoice_changed}) THEN
        RAISE EXCEPTION 'invoice % is finalized: its amounts and lines cannot change', OLD.number
            USING ERRCODE = 'P0001';
    END IF;
    IF OLD.status <> 'draft' AND NEW.status = 'draft' THEN
        RAISE EXCEPTION 'invoice % cannot go back to draft', OLD.number USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION tarif_credit_note_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'credit note % cannot be deleted', OLD.number USING ERRCODE = 'P0001';
    END IF;
    IF ({credit_note_changed}) OR (OLD.status = 'void' AND NEW.status <> 'void') THEN
        RAISE EXCEPTION 'credit note % is issued and cannot change', OLD.number USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION tarif_number_sequence_forward() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'number sequence % % % cannot be deleted', OLD.brand_id, OLD.kind, OLD.scope
            USING ERRCODE = 'P0001';
    END IF;
    IF (OLD.brand_id, OLD.kind, OLD.scope) IS DISTINCT FROM (NEW.brand_id, NEW.kind, NEW.scope)
       OR NEW.last_value < OLD.last_value
       OR (NEW.last_value = OLD.last_value AND OLD.chain_head <> '' AND
           (OLD.chain_head, OLD.last_issued_at) IS DISTINCT FROM (NEW.chain_head, NEW.last_issued_at)) THEN
        RAISE EXCEPTION 'number sequence % % % only moves forward', OLD.brand_id, OLD.kind, OLD.scope
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tarif_number_sequence_forward BEFORE UPDATE OR DELETE ON invoices_numbersequence
    FOR EACH ROW EXECUTE FUNCTION tarif_number_sequence_forward();

CREATE OR REPLACE FUNCTION tarif_refuse_truncate() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('tarif.allow_truncate', true), '') <> 'on' THEN
        RAISE EXCEPTION '% holds issued documents or their history: TRUNCATE refused', TG_TABLE_NAME
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
""".replace("{invoice_changed}", _changed(INVOICE_FROZEN)).replace(
        "{credit_note_changed}", _changed(CREDIT_NOTE_FROZEN)
    )
    + "".join(
        f"\nCREATE TRIGGER tarif_refuse_truncate BEFORE TRUNCATE ON {table}"
        " FOR EACH STATEMENT EXECUTE FUNCTION tarif_refuse_truncate();"
        for table in TRUNCATE_GUARDED
    )
)

# Back to the freeze of 0002 (fewer columns), without the new triggers.
BACKWARD = (
    "".join(f"\nDROP TRIGGER IF EXISTS tarif_refuse_truncate ON {table};" for table in TRUNCATE_GUARDED)
    + """
DROP TRIGGER IF EXISTS tarif_number_sequence_forward ON invoices_numbersequence;
DROP FUNCTION IF EXISTS tarif_number_sequence_forward();
"""
)


def backfill_chain(apps, schema_editor):
    from invoices.services.chain import chain_backfill

    chain_backfill(
        sequence_model=apps.get_model("invoices", "NumberSequence"),
        invoice_model=apps.get_model("invoices", "Invoice"),
        credit_note_model=apps.get_model("invoices", "CreditNote"),
    )


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)
        # The 0002 functions cover fewer columns: reinstall them.
        from importlib import import_module

        frozen_0002 = import_module("invoices.migrations.0002_finalized_invoices_are_frozen")
        schema_editor.execute(
            frozen_0002.FORWARD.split("CREATE TRIGGER")[0]
            + frozen_0002.FORWARD[frozen_0002.FORWARD.index("CREATE OR REPLACE FUNCTION tarif_credit_note_frozen") :]
            .split("CREATE TRIGGER")[0],
            params=None,
        )


class Migration(migrations.Migration):
    dependencies = [("invoices", "0006_issue_time_and_hash_chain")]
    operations = [
        migrations.RunPython(backfill_chain, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(forward, backward, elidable=False),
    ]
