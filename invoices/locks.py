"""Row locks of the invoices app, one helper per model (STYLE §3).

Lock order, always: customer (its balance) -> invoice -> number sequence. A service
that needs several locks takes them in that order; rows of one model are locked in
primary-key order, so two transactions never wait for each other in a cycle.

On SQLite `select_for_update` is a no-op: transactions start IMMEDIATE (see
config/settings/base.py), so writers serialize on the whole database instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from customers.models import Customer
from invoices.models import CreditNote, Invoice, NumberSequence


def invoice_qs_for_update() -> QuerySet[Invoice]:
    return Invoice.objects.order_by("pk").select_for_update(of=("self",))


def credit_note_qs_for_update() -> QuerySet[CreditNote]:
    return CreditNote.objects.order_by("pk").select_for_update(of=("self",))


def number_sequence_qs_for_update() -> QuerySet[NumberSequence]:
    return NumberSequence.objects.order_by("pk").select_for_update(of=("self",))


def customers_lock_balance(*, customer_ids: Iterable[int]) -> None:
    """Serialize everything that reads then moves these customers' balances.

    The balance is a sum over the ledger, so there is no balance row to lock: the
    customer row stands in for it. FOR NO KEY UPDATE, so inserts that merely reference
    the customer (invoices, invoice items, events) are not blocked. One query.
    # TODO(lead): move to customers/locks.py (customer_qs_for_update) when that app has one.
    """
    ids = sorted(set(customer_ids))
    if ids:
        list(
            Customer.objects.filter(pk__in=ids)
            .order_by("pk")
            .select_for_update(of=("self",), no_key=True)
            .values_list("pk", flat=True)
        )
