"""Errors of the prepaid credits (a leaf: every wallet module may raise them)."""

from __future__ import annotations

from typing import Any

from config.errors import DomainError


class WalletError(DomainError):
    code = "wallet_refused"
    http_status = 422

    def __init__(self, message: Any = None, *args: Any, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, *args, **kwargs)
        self.field = field  # the API's problem+json names it


class CreditGrantConflict(WalletError):
    """The grant's state does not allow it (voiding an expired grant...)."""

    code = "credit_grant_conflict"
    http_status = 409


class WalletCurrencyMismatch(WalletError):
    code = "wallet_currency"
    http_status = 409
