# The event log moves from the billing app to config.events: its tables, indexes and rows
# stay where they are (billing_domainevent, billing_eventcursor); only Django's state moves.
# billing 0014 removes the two models from billing's state once this has added them here.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import config.modes

MODELS = ("domainevent", "eventcursor")


def move_content_types(apps, schema_editor, source="billing", target="events"):
    # Permissions (and the role groups holding them) and admin log entries follow the models.
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MODELS:
        if ContentType.objects.using(db).filter(app_label=target, model=model).exists():
            continue
        ContentType.objects.using(db).filter(app_label=source, model=model).update(app_label=target)


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, source="events", target="billing")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("billing", "0013_amount_and_quantity_bounds"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0005_livemode"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="DomainEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("type", models.CharField(db_index=True, max_length=80, verbose_name="type")),
                        ("object_type", models.CharField(max_length=40, verbose_name="object type")),
                        ("object_id", models.CharField(max_length=40, verbose_name="object id")),
                        ("data", models.JSONField(default=dict, verbose_name="data")),
                        ("occurred_at", models.DateTimeField(verbose_name="occurred at")),
                        (
                            "livemode",
                            models.BooleanField(
                                db_index=True,
                                default=config.modes.default_livemode,
                                editable=False,
                                help_text="False for test-mode (sandbox) data.",
                                verbose_name="live mode",
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="recorded")),
                        (
                            "acting_user",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                to=settings.AUTH_USER_MODEL,
                                verbose_name="acting user",
                            ),
                        ),
                        (
                            "customer",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="events",
                                to="customers.customer",
                                verbose_name="customer",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "event",
                        "verbose_name_plural": "events",
                        "db_table": "billing_domainevent",
                        "ordering": ["pk"],
                        "indexes": [
                            models.Index(fields=["customer", "occurred_at"], name="billing_dom_custome_b877b0_idx"),
                            models.Index(fields=["object_type", "object_id"], name="billing_dom_object__650728_idx"),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="EventCursor",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=60, unique=True, verbose_name="consumer")),
                        ("last_event_id", models.BigIntegerField(default=0, verbose_name="last event read")),
                        ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated")),
                    ],
                    options={
                        "verbose_name": "event cursor",
                        "verbose_name_plural": "event cursors",
                        "db_table": "billing_eventcursor",
                    },
                ),
            ],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
