"""Refusals of the checkout services (each maps to problem+json in the API and a form error on the page)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from config.errors import DomainError


class CheckoutError(DomainError):
    """A checkout session that cannot be created or used as asked."""

    code = "checkout_invalid"
    http_status = 422
    default_message = _("This checkout session cannot be created as asked.")


class CheckoutSessionClosed(CheckoutError):
    """The session is complete or expired: nothing more can be done with it."""

    code = "checkout_session_closed"
    http_status = 409
    default_message = _("This checkout session is no longer open.")


class CheckoutPaymentDeclined(CheckoutError):
    """The gateway declined the card: nothing was created."""

    code = "checkout_payment_declined"
    http_status = 402
    default_message = _("Your card was declined.")
