from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EinvoicingConfig(AppConfig):
    name = "invoices.einvoicing"
    label = "einvoicing"
    verbose_name = _("E-invoicing (French reform)")
    default_auto_field = "django.db.models.BigAutoField"
