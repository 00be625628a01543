from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class QuotesConfig(AppConfig):
    name = "billing.quotes"
    label = "quotes"
    verbose_name = _("Quotes")
    default_auto_field = "django.db.models.BigAutoField"
