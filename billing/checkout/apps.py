from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CheckoutConfig(AppConfig):
    name = "billing.checkout"
    label = "checkout"
    verbose_name = _("Checkout")
    default_auto_field = "django.db.models.BigAutoField"
