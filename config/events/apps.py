from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EventsConfig(AppConfig):
    name = "config.events"
    label = "events"
    verbose_name = _("Event log")
    default_auto_field = "django.db.models.BigAutoField"
