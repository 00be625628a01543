"""The event-log cursors moved to billing (the owner of the event log): one table for
every consumer. Rows are copied over, then this app's copy of the model is dropped."""

from django.db import migrations


def copy_cursors(apps, schema_editor):
    old = apps.get_model("customers", "EventCursor")
    new = apps.get_model("billing", "EventCursor")
    for cursor in old.objects.all():
        new.objects.update_or_create(name=cursor.name, defaults={"last_event_id": cursor.last_event_id})



class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0003_portal_notifications"),
        ("billing", "0008_event_cursor"),
    ]

    operations = [
        migrations.RunPython(copy_cursors, migrations.RunPython.noop),
        migrations.DeleteModel(name="EventCursor"),
    ]
