"""Refusals of the storefront services."""

from __future__ import annotations

from config.errors import DomainConflict, DomainValidationError


class StorefrontError(DomainValidationError):
    """A pricing table or payment link that cannot be saved as asked (a form error in the console too)."""

    code = "storefront_refused"
    http_status = 422


class StorefrontUnavailable(DomainConflict):
    """A deactivated payment link or pricing table asked to start a checkout."""

    code = "storefront_unavailable"
    http_status = 410
