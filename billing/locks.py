"""Row locks for billing models: one select_for_update helper per model.

Lock order (always take them in this order, never the reverse, to avoid deadlocks):
subscription -> promotion code -> coupon. Within one model, rows are locked in
primary-key order (`order_by("pk")`).

On SQLite `select_for_update` is a no-op; there, transactions start IMMEDIATE (see
config/settings/base.py), so writers serialize on the database lock instead.

Besides row locks, one advisory lock: a billing run's scope (`billing_run_scope_lock`),
taken before any row lock of the run and held by the process that starts the run.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection
from django.db.models import QuerySet

from billing.models import Coupon, Payment, PromotionCode, Refund, Subscription


def subscription_qs_for_update() -> QuerySet[Subscription]:
    # of=("self",): callers may select_related the customer or coupon without locking them.
    return Subscription.objects.order_by("pk").select_for_update(of=("self",))


def promotion_code_qs_for_update() -> QuerySet[PromotionCode]:
    return PromotionCode.objects.order_by("pk").select_for_update(of=("self",))


def coupon_qs_for_update() -> QuerySet[Coupon]:
    return Coupon.objects.order_by("pk").select_for_update(of=("self",))


def payment_qs_for_update() -> QuerySet[Payment]:
    """Payments, after the customer (balance) and the invoice (docs/payments.md: subscription ->
    customer -> invoice -> payment): what is left to refund is read and reserved under it."""
    return Payment.objects.order_by("pk").select_for_update(of=("self",))


def refund_qs_for_update() -> QuerySet[Refund]:
    """A refund's status moves under its row lock (taken after the customer and invoice, if any)."""
    return Refund.objects.order_by("pk").select_for_update(of=("self",))


logger = logging.getLogger(__name__)

# First key of the two-key advisory lock space: "billing run" (0x7472 "tr" for Tarif run).
BILLING_RUN_LOCK_SPACE = 0x7472


def _scope_key(scope: str) -> int:
    """A stable signed 32-bit key for a scope name (PostgreSQL's int4 lock key)."""
    key = zlib.crc32(scope.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


@contextmanager
def billing_run_scope_lock(*, scope: str) -> Iterator[bool]:
    """Try to take the scope's session advisory lock; yield whether it was taken.

    Session level, not transaction level: an inline run commits chunk after chunk and
    holds the lock across them; PostgreSQL releases it if the process dies (a killed
    `manage.py bill`), which is how the next starter knows the run was abandoned.
    Elsewhere (SQLite) there is no such lock: yields True and the partial unique
    constraint on running runs is the only guard.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    key = _scope_key(scope)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [BILLING_RUN_LOCK_SPACE, key])
        taken = bool(cursor.fetchone()[0])
    try:
        yield taken
    finally:
        if taken:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [BILLING_RUN_LOCK_SPACE, key])
            except DatabaseError:  # connection gone: the server released the lock with the session
                logger.warning("billing run: could not release the scope lock %s", scope, exc_info=True)
