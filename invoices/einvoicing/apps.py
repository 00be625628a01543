from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EinvoicingConfig(AppConfig):
    name = "invoices.einvoicing"
    label = "einvoicing"
    verbose_name = _("E-invoicing (French reform)")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # deferred: app loading (the services import models, which need a ready registry)
        from invoices.einvoicing.services import einvoicing_register

        einvoicing_register()
