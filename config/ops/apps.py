from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OpsConfig(AppConfig):
    name = "config.ops"
    label = "ops"
    verbose_name = _("Operations")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from config.ops import metrics  # noqa: F401  (registers the custom Prometheus collectors)
        from config.ops.middleware import session_started

        user_logged_in.connect(session_started, dispatch_uid="tarif_session_started")
