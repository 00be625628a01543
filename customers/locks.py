"""Row locks of the customers app, one helper per model (STYLE §3), ranked in the one lock
order (`config.locking.LockRank`, docs/billing.md): customer (its balance) after the
subscriptions, before its invoices; rows in primary-key order.

On SQLite `select_for_update` is a no-op: transactions start IMMEDIATE (see
config/settings/base.py), so writers serialize on the whole database instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from config.locking import LockRank, lock_helper, ranked
from customers.models import Customer, NotificationLog


@lock_helper(LockRank.CUSTOMER)
def customer_qs_for_update() -> QuerySet[Customer]:
    """FOR UPDATE: also keeps new rows from referencing the customer (erasure, survey throttling)."""
    return Customer.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.CUSTOMER)
def customers_lock_balance(*, customer_ids: Iterable[int]) -> None:
    """Serialize everything that reads then moves these customers' balances.

    The balance is a sum over the ledger, so there is no balance row to lock: the
    customer row stands in for it. FOR NO KEY UPDATE, so inserts that merely reference
    the customer (invoices, invoice items, events) are not blocked. One query.
    """
    ids = sorted(set(customer_ids))
    if ids:
        list(
            ranked(
                Customer.objects.filter(pk__any_of=ids).order_by("pk").select_for_update(of=("self",), no_key=True),
                LockRank.CUSTOMER,
            ).values_list("pk", flat=True)
        )


@lock_helper(LockRank.NOTIFICATION_LOG)
def notification_log_qs_for_update() -> QuerySet[NotificationLog]:
    """A notification is sent at most once: its row is locked while it is sent."""
    return NotificationLog.objects.order_by("pk").select_for_update(of=("self",))
