"""Entries are numbered at validation, not at posting; closed periods guard documents too.

- `JournalEntry.number` becomes NULL until `ledger_entries_validate` numbers the entry
  (`validated_at` set in the same UPDATE): posting no longer locks the journal's sequence.
  Entries posted before this migration keep their numbers and count as validated when they
  were posted (`validated_at = created_at`).
- The append-only trigger now lets exactly one UPDATE through: number and `validated_at`
  going from NULL to a value, every other column unchanged. Any other UPDATE or DELETE is
  still refused (tests/invoices/ledger/test_validation.py has the negative controls).
- Closed periods on PostgreSQL: an invoice finalized, a credit note issued, a payment settled
  or a refund executed at an instant whose month (in the brand's time zone) is closed for the
  brand and the customer's mode is refused. The trigger takes the period row FOR SHARE, like
  the entries' trigger, so a close (FOR UPDATE) and such a document serialize.
"""

from django.db import migrations, models

FORWARD = """
CREATE OR REPLACE FUNCTION tarif_ledger_append_only() RETURNS trigger AS $$
BEGIN
    -- Nested: PL/pgSQL may evaluate every operand, and journal lines have no `number`.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'ledger_journalentry' THEN
        IF OLD.number IS NULL AND OLD.validated_at IS NULL
           AND NEW.number IS NOT NULL AND NEW.validated_at IS NOT NULL
           AND (to_jsonb(OLD) - 'number' - 'validated_at') = (to_jsonb(NEW) - 'number' - 'validated_at') THEN
            RETURN NEW;  -- validation: the one change an entry ever gets
        END IF;
    END IF;
    RAISE EXCEPTION 'ledger % rows are append-only: post a reversing entry instead', TG_TABLE_NAME
        USING ERRCODE = 'P0001';
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION tarif_ledger_document_period_open() RETURNS trigger AS $$
DECLARE
    moment timestamptz;
    old_moment timestamptz;
    doc_brand bigint;
    doc_livemode boolean;
    zone text;
    period_month date;
    period_state text;
BEGIN
    IF TG_TABLE_NAME = 'invoices_invoice' THEN
        moment := NEW.finalized_at;
        IF TG_OP = 'UPDATE' THEN old_moment := OLD.finalized_at; END IF;
        doc_brand := NEW.brand_id;
        SELECT livemode INTO doc_livemode FROM customers_customer WHERE id = NEW.customer_id;
    ELSIF TG_TABLE_NAME = 'invoices_creditnote' THEN
        moment := NEW.issued_at;
        IF TG_OP = 'UPDATE' THEN old_moment := OLD.issued_at; END IF;
        doc_brand := NEW.brand_id;
        SELECT livemode INTO doc_livemode FROM customers_customer WHERE id = NEW.customer_id;
    ELSIF TG_TABLE_NAME = 'billing_payment' THEN
        moment := NEW.settled_at;
        IF TG_OP = 'UPDATE' THEN old_moment := OLD.settled_at; END IF;
        SELECT brand_id INTO doc_brand FROM invoices_invoice WHERE id = NEW.invoice_id;
        SELECT livemode INTO doc_livemode FROM customers_customer WHERE id = NEW.customer_id;
    ELSE  -- billing_refund
        moment := NEW.executed_at;
        IF TG_OP = 'UPDATE' THEN old_moment := OLD.executed_at; END IF;
        SELECT brand_id INTO doc_brand FROM invoices_invoice WHERE id = NEW.invoice_id;
        SELECT c.livemode INTO doc_livemode FROM billing_payment p
            JOIN customers_customer c ON c.id = p.customer_id WHERE p.id = NEW.payment_id;
    END IF;
    IF moment IS NULL OR moment IS NOT DISTINCT FROM old_moment THEN
        RETURN NEW;
    END IF;
    SELECT timezone INTO zone FROM invoices_brand WHERE id = doc_brand;
    period_month := date_trunc('month', moment AT TIME ZONE coalesce(zone, 'UTC'))::date;
    -- A missing period row is an open month (a close creates its row when it is requested).
    SELECT state INTO period_state FROM ledger_accountingperiod
        WHERE brand_id = doc_brand AND livemode = coalesce(doc_livemode, true) AND month = period_month FOR SHARE;
    IF period_state = 'closed' THEN
        RAISE EXCEPTION 'accounting period % is closed: no % may be dated in it', period_month, TG_TABLE_NAME
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tarif_ledger_invoice_period_open BEFORE INSERT OR UPDATE OF finalized_at ON invoices_invoice
    FOR EACH ROW EXECUTE FUNCTION tarif_ledger_document_period_open();
CREATE TRIGGER tarif_ledger_creditnote_period_open BEFORE INSERT OR UPDATE OF issued_at ON invoices_creditnote
    FOR EACH ROW EXECUTE FUNCTION tarif_ledger_document_period_open();
CREATE TRIGGER tarif_ledger_payment_period_open BEFORE INSERT OR UPDATE OF settled_at ON billing_payment
    FOR EACH ROW EXECUTE FUNCTION tarif_ledger_document_period_open();
CREATE TRIGGER tarif_ledger_refund_period_open BEFORE INSERT OR UPDATE OF executed_at ON billing_refund
    FOR EACH ROW EXECUTE FUNCTION tarif_ledger_document_period_open();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS tarif_ledger_invoice_period_open ON invoices_invoice;
DROP TRIGGER IF EXISTS tarif_ledger_creditnote_period_open ON invoices_creditnote;
DROP TRIGGER IF EXISTS tarif_ledger_payment_period_open ON billing_payment;
DROP TRIGGER IF EXISTS tarif_ledger_refund_period_open ON billing_refund;
DROP FUNCTION IF EXISTS tarif_ledger_document_period_open();
CREATE OR REPLACE FUNCTION tarif_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger % rows are append-only: post a reversing entry instead', TG_TABLE_NAME
        USING ERRCODE = 'P0001';
END $$ LANGUAGE plpgsql;
"""

BACKFILL_VALIDATED_AT = "UPDATE ledger_journalentry SET validated_at = created_at WHERE number IS NOT NULL"


def mark_existing_validated(apps, schema_editor):
    """Entries numbered at posting (before this migration) count as validated then."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE ledger_journalentry DISABLE TRIGGER tarif_ledger_entry_append_only")
        schema_editor.execute(BACKFILL_VALIDATED_AT)
        schema_editor.execute("ALTER TABLE ledger_journalentry ENABLE TRIGGER tarif_ledger_entry_append_only")
    else:
        schema_editor.execute(BACKFILL_VALIDATED_AT)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0010_formats_einvoice_syntax"),
        ("invoices", "0014_tax_code_reason_languages"),
        ("billing", "0022_formats_product_supply_kind"),
        ("ledger", "0003_fx19_write_off_vat_relief"),
    ]

    operations = [
        migrations.AddField(
            model_name="journalentry",
            name="validated_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="validated"),
        ),
        migrations.AlterField(
            model_name="journalentry",
            name="number",
            field=models.PositiveBigIntegerField(blank=True, null=True, verbose_name="entry number"),
        ),
        migrations.RunPython(mark_existing_validated, migrations.RunPython.noop, elidable=False),
        migrations.AddIndex(
            model_name="journalentry",
            index=models.Index(
                condition=models.Q(("number__isnull", True)),
                fields=["brand", "livemode", "journal", "fiscal_year", "date"],
                name="ledger_entry_unvalidated_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="journalentry",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("number__isnull", True), ("validated_at__isnull", True)),
                    models.Q(("number__isnull", False), ("validated_at__isnull", False)),
                    _connector="OR",
                ),
                name="ledger_entry_numbered_when_validated",
            ),
        ),
        migrations.RunPython(forward, backward, elidable=False),
    ]
