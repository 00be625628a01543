# The outbox relay is gone (nothing consumed what it published; every consumer reads the
# event log through config/events/consumers.py): its bookkeeping table goes with it.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0002_handoffs"),
    ]
    # Before billing drops DomainEvent from its state, nothing may still point at it there.
    run_before = [("billing", "0014_event_log_moves_to_events")]

    operations = [
        migrations.DeleteModel(name="OutboxDelivery"),
    ]
