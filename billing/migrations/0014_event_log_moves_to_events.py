# DomainEvent and EventCursor now belong to the `events` app (config/events): state only,
# the tables keep their names and rows (events 0001 adds the models to its state first).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0013_amount_and_quantity_bounds"),
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name="webhookdelivery",
                    name="event",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="events.domainevent",
                        verbose_name="event",
                    ),
                ),
                migrations.DeleteModel(name="EventCursor"),
                migrations.DeleteModel(name="DomainEvent"),
            ],
        ),
    ]
