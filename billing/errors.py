"""Errors of the subscription services, in a leaf module: every billing service may raise or
catch them without importing the subscription services (billing.services.modes does)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from config.errors import DomainError


class SubscriptionError(DomainError, ValidationError):
    """A request the subscription services refuse, with a message for the person who made it."""

    code = "subscription_refused"


class SubscriptionConflict(SubscriptionError):
    """A request the subscription's current state does not allow."""

    code = "subscription_conflict"
    http_status = 409


class CustomerCurrencyMismatch(SubscriptionError):
    """A subscription or an invoice item in another currency than its customer's."""

    code = "customer_currency"
    http_status = 409
