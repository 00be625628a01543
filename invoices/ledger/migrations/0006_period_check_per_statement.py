"""The open-period check of journal entries runs once per statement instead of once per row (issue 19).

`tarif_ledger_period_open` was a BEFORE INSERT row trigger: for every entry an INSERT … ON
CONFLICT DO NOTHING of its month's period row, then a SELECT … FOR SHARE of it. A billing-run
chunk COPYs ~1,000 sales entries of one brand and one month: 2,000 statements for one period
row (a fifth of the ledger's database time per chunk, docs/PERFORMANCE.md). Now an AFTER
INSERT statement trigger with the inserted rows as a transition table does the same once per
distinct (brand, mode, month): inserts the missing periods, locks them FOR SHARE (in key
order: two writers never lock them in opposite orders) and refuses the statement if any is
closed. Same rule, same error code; the statement is undone either way (tests in
tests/invoices/ledger: closed periods, the period rows a posting creates, close under
concurrency).
"""

from django.db import migrations

FORWARD = """
DROP TRIGGER IF EXISTS tarif_ledger_period_open ON ledger_journalentry;

CREATE OR REPLACE FUNCTION tarif_ledger_periods_open() RETURNS trigger AS $$
DECLARE
    closed_month date;
BEGIN
    INSERT INTO ledger_accountingperiod (brand_id, livemode, month, state)
        SELECT DISTINCT brand_id, livemode, date_trunc('month', date)::date, 'open' FROM new_entries
        ORDER BY 1, 2, 3
        ON CONFLICT DO NOTHING;
    SELECT min(locked.month) INTO closed_month FROM (
        SELECT period.month, period.state FROM ledger_accountingperiod AS period
          JOIN (SELECT DISTINCT brand_id, livemode, date_trunc('month', date)::date AS month FROM new_entries) AS written
            ON written.brand_id = period.brand_id AND written.livemode = period.livemode
           AND written.month = period.month
         ORDER BY period.brand_id, period.livemode, period.month
           FOR SHARE OF period
    ) AS locked WHERE locked.state = 'closed';
    IF closed_month IS NOT NULL THEN
        RAISE EXCEPTION 'accounting period % is closed: no entry may be dated in it', closed_month
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tarif_ledger_period_open AFTER INSERT ON ledger_journalentry
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION tarif_ledger_periods_open();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS tarif_ledger_period_open ON ledger_journalentry;
DROP FUNCTION IF EXISTS tarif_ledger_periods_open();

CREATE TRIGGER tarif_ledger_period_open BEFORE INSERT ON ledger_journalentry
    FOR EACH ROW EXECUTE FUNCTION tarif_ledger_period_open();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0005_entries_numbered_after_posting")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
