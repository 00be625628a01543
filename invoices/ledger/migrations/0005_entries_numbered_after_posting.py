"""An invoice's sales entry may be posted before the invoice is numbered (issue 20).

The bulk issue posts a chunk's entries before it locks the number series, so the postings
stay out of that lock; the entries carry no document number yet and a placeholder
(U+E000, a private-use character) in their labels where the number goes. Under the lock,
one set-based UPDATE fills in the number, and moves the entry's dates when the invoice was
re-dated there. The append-only trigger lets exactly that through, besides validation:

- an entry: while it is unvalidated and its label holds the placeholder, its document
  number, label, dates and fiscal year may change, every other column unchanged;
- a line: its label may lose its placeholder, every other column unchanged.

Once the placeholder is gone nothing but validation changes an entry (negative controls in
tests/invoices/ledger/test_database_guards.py).
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION tarif_ledger_append_only() RETURNS trigger AS $$
BEGIN
    -- Nested: PL/pgSQL may evaluate every operand, and journal lines have no `number`.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'ledger_journalentry' THEN
        IF OLD.number IS NULL AND OLD.validated_at IS NULL
           AND NEW.number IS NOT NULL AND NEW.validated_at IS NOT NULL
           AND (to_jsonb(OLD) - 'number' - 'validated_at') = (to_jsonb(NEW) - 'number' - 'validated_at') THEN
            RETURN NEW;  -- validation: the one change a numbered document's entry ever gets
        END IF;
        IF OLD.number IS NULL AND OLD.validated_at IS NULL AND NEW.number IS NULL AND NEW.validated_at IS NULL
           AND strpos(OLD.label, U&'\\E000') > 0
           AND (to_jsonb(OLD) - 'document_number' - 'label' - 'date' - 'document_date' - 'fiscal_year')
             = (to_jsonb(NEW) - 'document_number' - 'label' - 'date' - 'document_date' - 'fiscal_year') THEN
            RETURN NEW;  -- its invoice numbered (and maybe re-dated) in the posting transaction
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'ledger_journalline' THEN
        IF strpos(OLD.label, U&'\\E000') > 0 AND strpos(NEW.label, U&'\\E000') = 0
           AND (to_jsonb(OLD) - 'label') = (to_jsonb(NEW) - 'label') THEN
            RETURN NEW;  -- the number in place of the placeholder
        END IF;
    END IF;
    RAISE EXCEPTION 'ledger % rows are append-only: post a reversing entry instead', TG_TABLE_NAME
        USING ERRCODE = 'P0001';
END $$ LANGUAGE plpgsql;
"""

BACKWARD = """
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
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0004_ledger2_validation")]

    operations = [migrations.RunPython(forward, backward)]
