# The event log moved to the `events` app (state only: same table, same constraint).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("feedback", "0003_invitation_send_outside_locks"),
        ("events", "0001_initial"),
    ]
    # Before billing drops DomainEvent from its state, nothing may still point at it there.
    run_before = [("billing", "0014_event_log_moves_to_events")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name="invitation",
                    name="source_event",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="events.domainevent",
                        verbose_name="source event",
                    ),
                ),
            ],
        ),
    ]
