"""Webhook attempts keep only the response's status line: bodies stored by earlier versions
(whatever a target answered, shown to every console reader) are erased."""

from django.db import migrations, models


def erase_response_bodies(apps, schema_editor):
    WebhookAttempt = apps.get_model("billing", "WebhookAttempt")
    WebhookAttempt.objects.exclude(response_excerpt="").update(response_excerpt="")


class Migration(migrations.Migration):
    dependencies = [("billing", "0009_billing_run_records")]

    operations = [
        migrations.AlterField(
            model_name="webhookattempt",
            name="response_excerpt",
            field=models.CharField(blank=True, max_length=500, verbose_name="response status line"),
        ),
        migrations.RunPython(erase_response_bodies, migrations.RunPython.noop, elidable=True),
    ]
