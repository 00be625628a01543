from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate

from config.locking import enable_lock_order_checks


class TarifAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "config.admin_site.TarifAdminSite"


class ConfigConfig(AppConfig):
    default = True
    name = "config"
    verbose_name = "Tarif"

    def ready(self) -> None:
        # deferred: app loading: ready() runs once the app registry is ready
        from config.admin_site import harden_autocomplete_widgets, harden_json_form_fields

        # deferred: app loading: ready() runs once the app registry is ready
        from config.roles import sync_role_groups_after_migrate

        harden_autocomplete_widgets()
        harden_json_form_fields()
        import config.lookups  # noqa: F401  # deferred: registers the `any_of` lookup on model fields

        # The lock-order checker (config/locking.py): on in the tests and under DEBUG.
        if getattr(settings, "TARIF_LOCK_ORDER_CHECKS", settings.DEBUG):
            enable_lock_order_checks()

        # Role groups are created by a data migration; this keeps their permissions
        # complete when later migrations add models (permissions exist only after migrate).
        post_migrate.connect(sync_role_groups_after_migrate, dispatch_uid="tarif-sync-role-groups")
