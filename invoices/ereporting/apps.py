from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EReportingConfig(AppConfig):
    name = "invoices.ereporting"
    label = "ereporting"
    verbose_name = _("E-reporting")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from invoices.ereporting.services import ereporting_register  # deferred: app loading

        ereporting_register()
