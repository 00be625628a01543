"""Refusals of the entitlement services."""

from __future__ import annotations

from config.errors import DomainValidationError


class EntitlementError(DomainValidationError):
    """A feature or a product's feature that cannot be saved as asked (a form error in the console too)."""

    code = "entitlement_refused"
    http_status = 422
