from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest

from config.audit.context import client_ip


class PortalAccountAdapter(DefaultAccountAdapter):
    """Customers are invited from the operator console; open signup is off by default."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return bool(settings.TARIF_OPEN_SIGNUP)

    def get_client_ip(self, request: HttpRequest) -> str:
        """The client behind our trusted proxies (allauth's rate limits), as axes and the audit log see it."""
        return client_ip(request) or super().get_client_ip(request)
