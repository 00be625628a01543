from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EntitlementsConfig(AppConfig):
    name = "billing.entitlements"
    label = "entitlements"
    verbose_name = _("Entitlements")
    default_auto_field = "django.db.models.BigAutoField"
