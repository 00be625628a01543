from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"
    verbose_name = _("Billing")

    def ready(self) -> None:
        # deferred: app loading (the services import models, which need a ready registry)
        from billing.services.coupons import discounts_register

        # deferred: app loading, as above
        from billing.services.dunning import dunning_register

        # deferred: app loading, as above
        from billing.services.pending_updates import pending_update_register

        dunning_register()
        pending_update_register()
        discounts_register()
