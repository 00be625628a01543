"""Row locks of the invoices app, one helper per model (STYLE §3).

Lock order, always: customer (its balance, `customers.locks`) -> invoice -> credit note
-> number sequence, each helper ranked in the one order (`config.locking.LockRank`,
docs/billing.md); rows of one model are locked in primary-key order, so two
transactions never wait for each other in a cycle.

On SQLite `select_for_update` is a no-op: transactions start IMMEDIATE (see
config/settings/base.py), so writers serialize on the whole database instead.
"""

from __future__ import annotations

from django.db.models import QuerySet

from config.locking import LockRank, lock_helper
from customers.locks import customers_lock_balance
from invoices.models import CreditNote, Invoice, NumberSequence

__all__ = [
    "credit_note_qs_for_update",
    "customers_lock_balance",  # lives in customers.locks; re-exported for the invoices services
    "invoice_qs_for_update",
    "number_sequence_qs_for_update",
]


@lock_helper(LockRank.INVOICE)
def invoice_qs_for_update() -> QuerySet[Invoice]:
    return Invoice.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.CREDIT_NOTE)
def credit_note_qs_for_update() -> QuerySet[CreditNote]:
    return CreditNote.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.NUMBER_SEQUENCE)
def number_sequence_qs_for_update() -> QuerySet[NumberSequence]:
    return NumberSequence.objects.order_by("pk").select_for_update(of=("self",))
