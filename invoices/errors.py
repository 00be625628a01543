"""Domain errors of the invoices app. Each message says what was refused and why,
in words an operator can act on (the admin and the API show them as they are)."""

from __future__ import annotations

from config.errors import DomainError


class InvoiceError(DomainError):
    """Base class of the invoice domain errors."""

    code = "invoice_refused"


class FrozenInvoiceError(InvoiceError):
    """A write that would change a finalized invoice, its lines, or an issued credit note."""

    code = "invalid_state"
    http_status = 409


class InvalidInvoiceTransition(InvoiceError):
    """A status change the invoice state machine (invoices/states.py) does not allow."""

    code = "invalid_state"
    http_status = 409

    def __init__(self, current: str, target: str, *, number: str | None = None) -> None:
        what = f"Invoice {number}" if number else "An invoice"
        super().__init__(f"{what} cannot go from '{current}' to '{target}'.")
        self.current = current
        self.target = target


class InvoiceDoesNotReconcile(InvoiceError):
    """A draft whose stored totals differ from what its lines add up to."""


class NumberingError(InvoiceError):
    """A number series that cannot issue a number (bad format, clash between brands)."""


class PaymentError(InvoiceError):
    """A payment an invoice cannot take (wrong status, over-payment, not positive)."""


class CreditNoteError(InvoiceError):
    """A credit note that cannot be issued (draft invoice, over-credit, allocation mismatch)."""


class InsufficientBalance(InvoiceError):
    """A debit larger than the credit the customer holds: the balance never goes negative."""

    code = "insufficient_balance"
    http_status = 409


class FreshVerificationRequired(InvoiceError):
    """A write-off or a bank-detail change by a person without a second factor verified
    within TARIF_MFA_FRESH_MINUTES (config/mfa.py)."""

    code = "approval_required"
    http_status = 403
