from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "customers"
    verbose_name = _("Customers")

    def ready(self) -> None:
        # deferred: app loading: ready() runs once the app registry is ready
        from allauth.account.signals import password_reset

        # deferred: app loading: ready() runs once the app registry is ready
        from customers.signals import verify_email_on_password_set

        password_reset.connect(verify_email_on_password_set, dispatch_uid="tarif-verify-email-on-reset")
