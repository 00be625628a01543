from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest


class PortalAccountAdapter(DefaultAccountAdapter):
    """Customers are invited from the operator console; open signup is off by default."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return bool(settings.TARIF_OPEN_SIGNUP)
