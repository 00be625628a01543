from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OpsConfig(AppConfig):
    name = "config.ops"
    label = "ops"
    verbose_name = _("Operations")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # deferred: app loading: ready() runs once the app registry is ready
        from django.contrib.auth.signals import user_logged_in

        # deferred: app loading: ready() runs once the app registry is ready
        from config.ops import metrics  # noqa: F401  (registers the custom Prometheus collectors)

        # deferred: app loading: ready() runs once the app registry is ready
        from config.ops.middleware import session_started

        user_logged_in.connect(session_started, dispatch_uid="tarif_session_started")
