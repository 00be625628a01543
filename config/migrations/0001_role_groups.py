"""Create the staff role groups Finance, Support and Read-only with their permissions."""

from django.db import migrations


def create_role_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    from config.roles import sync_role_groups

    # Permissions normally appear only after migrate (post_migrate); create them now so
    # the groups are complete from this migration on.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_role_groups(group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission"))


def remove_role_groups(apps, schema_editor):
    from config.roles import ROLE_RULES

    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_RULES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0002_initial"),
        ("billing", "0002_initial"),
        ("invoices", "0002_finalized_invoices_are_frozen"),
    ]
    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
