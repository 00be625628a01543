"""Invoice status machine: the one table of allowed transitions.

Services that change an invoice's status lock the row (invoices/locks.py), then call
`assert_invoice_transition`; nothing else writes `Invoice.status`.

    draft ──finalize──> open ──payment / credit note──> paid
      │                  │ └──mark_uncollectible──> uncollectible ──payment──> paid
      │                  └──void──> void <──void── uncollectible
      └──finalize with nothing due (total covered by credit, or zero / negative)──> paid

paid and void are terminal: corrections of a paid invoice are credit notes.
"""

from __future__ import annotations

from typing import Final

from invoices.errors import InvalidInvoiceTransition
from invoices.models import Invoice

Status = Invoice.Status

ALLOWED_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    Status.DRAFT: frozenset({Status.OPEN, Status.PAID}),
    Status.OPEN: frozenset({Status.PAID, Status.VOID, Status.UNCOLLECTIBLE}),
    Status.UNCOLLECTIBLE: frozenset({Status.PAID, Status.VOID}),
    Status.PAID: frozenset(),
    Status.VOID: frozenset(),
}

# Statuses a payment may be recorded against, and a credit note issued for.
PAYABLE_STATUSES: Final = frozenset({Status.OPEN, Status.UNCOLLECTIBLE})
CREDITABLE_STATUSES: Final = frozenset({Status.OPEN, Status.PAID})


def can_transition(current: str, target: str) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def assert_invoice_transition(invoice: Invoice, target: str) -> None:
    if not can_transition(invoice.status, target):
        raise InvalidInvoiceTransition(invoice.status, target, number=invoice.number)
