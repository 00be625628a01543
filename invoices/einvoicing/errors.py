"""Refusals and failures of the e-invoicing platform (PA) adapter (config.errors.DomainError)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from config.errors import DomainConflict, DomainError


class PlatformError(DomainError):
    """Anything the approved platform (PA) answered or failed to answer."""

    code = "einvoicing_platform_error"
    http_status = 502
    default_message = _("The e-invoicing platform could not process the request.")


class PlatformUnavailable(PlatformError):
    """Retryable: a timeout, a 5xx answer, a refused or dropped connection."""

    code = "einvoicing_platform_unavailable"
    http_status = 503
    default_message = _("The e-invoicing platform is unavailable; the request will be retried.")


class PlatformRejected(PlatformError):
    """Final: the platform refused the request (4xx) and said why."""

    code = "einvoicing_platform_rejected"
    http_status = 422
    default_message = _("The e-invoicing platform rejected the request.")

    def __init__(self, message: object = None, *, reason_code: str = "", status_code: int = 0) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.status_code = status_code


class TransmissionStateError(DomainConflict):
    """A transition the transmission's state does not allow (retry a submitted document...)."""

    code = "einvoicing_transmission_state"
    http_status = 409


class PlatformAccountError(DomainConflict):
    """A platform account that cannot be saved as asked (a second one for the same brand and mode)."""

    code = "einvoicing_account_conflict"
    http_status = 409


class WebhookSignatureError(DomainError):
    """An inbound status webhook whose signature or timestamp does not check out."""

    code = "einvoicing_bad_signature"
    http_status = 400
    default_message = _("The webhook signature is missing, invalid or too old.")
