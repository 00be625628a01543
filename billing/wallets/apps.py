from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WalletsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing.wallets"
    label = "wallets"
    verbose_name = _("Prepaid credits")

    def ready(self) -> None:
        # deferred: app loading (the services import models, which need a ready registry)
        from billing.wallets.services import wallets_register

        wallets_register()
