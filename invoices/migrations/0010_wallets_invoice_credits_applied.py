"""Issue 16 (wallets): prepaid credits applied to an invoice, frozen with its other amounts.

The PostgreSQL freeze trigger's function is replaced by one that also covers `credits_applied`
(the same body as 0007's, one more column).
"""

from importlib import import_module

from django.db import migrations, models

_FREEZE_0007 = import_module("invoices.migrations.0007_chain_backfill_and_full_freeze")


def _invoice_function(columns):
    body = _FREEZE_0007.FORWARD
    start = body.index("CREATE OR REPLACE FUNCTION tarif_invoice_frozen")
    end = body.index("CREATE OR REPLACE FUNCTION tarif_credit_note_frozen")
    old = _FREEZE_0007._changed(_FREEZE_0007.INVOICE_FROZEN)
    return body[start:end].replace(old, _FREEZE_0007._changed(columns))


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            _invoice_function((*_FREEZE_0007.INVOICE_FROZEN, "credits_applied")), params=None
        )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_invoice_function(_FREEZE_0007.INVOICE_FROZEN), params=None)


class Migration(migrations.Migration):
    dependencies = [('invoices', '0009_usage_threshold_billing_reason')]

    operations = [
        migrations.AddField(
            model_name="invoice",
            name="credits_applied",
            field=models.BigIntegerField(
                default=0,
                help_text="Prepaid credits (wallet) used on this invoice.",
                verbose_name="prepaid credits applied",
            ),
        ),
        migrations.RunPython(forward, backward, elidable=False),
    ]
