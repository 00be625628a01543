from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"
    verbose_name = _("Billing")

    def ready(self) -> None:
        # deferred: app loading (the services import models, which need a ready registry)
        from billing.services.coupons import discounts_invoice_voided, discounts_invoices_finalized
        from billing.services.dunning import dunning_register
        from invoices.services.finalize import invoices_finalized
        from invoices.services.lifecycle import invoice_voided

        dunning_register()
        invoices_finalized.connect(discounts_invoices_finalized)
        invoice_voided.connect(discounts_invoice_voided)
