"""Errors of the accounting ledger (a leaf: every ledger module may raise them)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from config.errors import DomainError


class LedgerError(DomainError):
    code = "ledger_refused"
    http_status = 422
    default_message = _("The accounting entry was refused.")


class UnbalancedEntry(LedgerError):
    """A bug in a posting rule, never a user error: debits and credits must be equal."""

    code = "ledger_unbalanced"
    http_status = 500


class PeriodClosed(LedgerError):
    code = "accounting_period_closed"
    http_status = 409
    default_message = _("This accounting period is closed.")


class PeriodCloseRefused(LedgerError):
    code = "accounting_period_close_refused"
    http_status = 409


class MissingExchangeRate(LedgerError):
    code = "exchange_rate_missing"
    http_status = 422


class MissingAccount(LedgerError):
    code = "ledger_account_missing"
    http_status = 422


class LedgerSettingsRefused(LedgerError):
    """A staff member without the ledger settings permission tried to change them."""

    code = "ledger_settings_refused"
    http_status = 403
    default_message = _("You are not allowed to change the ledger settings.")
