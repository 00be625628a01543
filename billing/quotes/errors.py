"""Refusals of the quote services (config.errors.DomainError: code + HTTP status)."""

from __future__ import annotations

from config.errors import DomainConflict, DomainValidationError


class QuoteError(DomainValidationError):
    """A quote that cannot be saved as asked (a form error in the console too)."""

    code = "quote_refused"
    http_status = 422


class QuoteStateError(DomainConflict):
    """A transition the quote's status does not allow (finalize a sent quote, accept an expired one...)."""

    code = "quote_state"
    http_status = 409
