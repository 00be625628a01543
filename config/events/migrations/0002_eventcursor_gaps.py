from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="eventcursor",
            name="gaps",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Ranges [first, last, seen at] of ids below the cursor that were not visible when it passed.",
                verbose_name="ids not seen yet",
            ),
        ),
    ]
