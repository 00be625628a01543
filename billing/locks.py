"""Row locks for billing models: one select_for_update helper per model.

Each helper declares its rank in the one lock order (`config.locking.LockRank`, the
table in docs/billing.md): a transaction takes locks in ascending rank, and rows of
one model in primary-key order (`order_by("pk")`).

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

from django.conf import settings
from django.db import DatabaseError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from billing.models import (
    BankStatementLine,
    Coupon,
    DunningCase,
    Payment,
    PaymentMethod,
    PromotionCode,
    Refund,
    SandboxCharge,
    SandboxSetupSession,
    Subscription,
    TestClock,
    WebhookEndpoint,
)
from billing.stripe_import_models import StripeImportRun
from config.locking import LockRank, lock_helper, note_lock
from customers.locks import customers_lock_balance
from invoices.locks import invoice_qs_for_update
from invoices.models import Invoice


@lock_helper(LockRank.SUBSCRIPTION)
def subscription_qs_for_update() -> QuerySet[Subscription]:
    # of=("self",): callers may select_related the customer or coupon without locking them.
    return Subscription.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.PROMOTION_CODE)
def promotion_code_qs_for_update() -> QuerySet[PromotionCode]:
    return PromotionCode.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.COUPON)
def coupon_qs_for_update() -> QuerySet[Coupon]:
    return Coupon.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.PAYMENT)
def payment_qs_for_update() -> QuerySet[Payment]:
    """Payments, after the customer (balance) and the invoice (docs/payments.md: subscription ->
    customer -> invoice -> payment): what is left to refund is read and reserved under it."""
    return Payment.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.REFUND)
def refund_qs_for_update() -> QuerySet[Refund]:
    """A refund's status moves under its row lock (taken after the customer and invoice, if any)."""
    return Refund.objects.order_by("pk").select_for_update(of=("self",))


def invoice_lock_with_owners(invoice_id: int) -> Invoice:
    """Lock an invoice the way every path that moves its money or status does, in the one
    order: its subscription (if any), its customer (balance), then the invoice itself.

    Payments, dunning and reconciliation take it first; a dunning case, a payment or a
    refund of the invoice is locked after it.
    """
    subscription_id, customer_id = (
        Invoice.objects.filter(pk=invoice_id).values_list("subscription_id", "customer_id").get()
    )
    if subscription_id is not None:
        list(subscription_qs_for_update().filter(pk=subscription_id).values_list("pk", flat=True))
    customers_lock_balance(customer_ids=[customer_id])
    return invoice_qs_for_update().select_related("customer", "customer__test_clock").get(pk=invoice_id)


@lock_helper(LockRank.PAYMENT_METHOD)
def payment_method_qs_for_update() -> QuerySet[PaymentMethod]:
    """A customer's payment methods, after the customer (whose default method changes)."""
    return PaymentMethod.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.DUNNING_CASE)
def dunning_case_qs_for_update() -> QuerySet[DunningCase]:
    """A dunning case moves under its lock, taken after its subscription, customer and invoice
    (a case's steps may move the subscription: lock it first, never after the case)."""
    return DunningCase.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.TEST_CLOCK)
def test_clock_qs_for_update() -> QuerySet[TestClock]:
    return TestClock.objects.order_by("pk").select_for_update(of=("self",))


test_clock_qs_for_update.__test__ = False  # type: ignore[attr-defined]


@lock_helper(LockRank.BANK_STATEMENT_LINE)
def bank_statement_line_qs_for_update() -> QuerySet[BankStatementLine]:
    """A statement line is matched under its lock, after the subscriptions, customer and invoices it pays."""
    return BankStatementLine.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.STRIPE_IMPORT_RUN)
def stripe_import_run_qs_for_update() -> QuerySet[StripeImportRun]:
    """A Stripe import run: starting an import resumes the account's unfinished run under its lock."""
    return StripeImportRun.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.WEBHOOK_ENDPOINT)
def webhook_endpoint_qs_for_update() -> QuerySet[WebhookEndpoint]:
    """An endpoint's fan-out cursor: two fan-outs of one endpoint take turns."""
    return WebhookEndpoint.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.SANDBOX_SETUP_SESSION)
def sandbox_setup_session_qs_for_update() -> QuerySet[SandboxSetupSession]:
    """The sandbox gateway's hosted page completes a session once."""
    return SandboxSetupSession.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.SANDBOX_CHARGE)
def sandbox_charge_qs_for_update() -> QuerySet[SandboxCharge]:
    """The sandbox gateway refunds a charge at most up to its amount."""
    return SandboxCharge.objects.order_by("pk").select_for_update(of=("self",))


logger = logging.getLogger(__name__)

# First key of the two-key advisory lock space: "billing run" (0x7472 "tr" for Tarif run).
BILLING_RUN_LOCK_SPACE = 0x7472
# The alias of a connection with a session of its own (DATABASE_SESSION_URL), behind a pooler.
SESSION_ALIAS = "session"


def _scope_key(scope: str) -> int:
    """A stable signed 32-bit key for a scope name (PostgreSQL's int4 lock key)."""
    key = zlib.crc32(scope.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


def _scope_lock_connection() -> BaseDatabaseWrapper | None:
    """The connection that holds the scope's session lock, or None when there is none to hold it.

    Behind PgBouncer in transaction mode (DATABASE_POOLER=pgbouncer) a session lock would stay on
    whichever server connection ran the statement, and the unlock might run on another: the
    lock then goes to the `session` alias (DATABASE_SESSION_URL: PostgreSQL directly, or a
    pooler database in session mode) when configured, else is not taken (issue 20).
    """
    if SESSION_ALIAS in settings.DATABASES:
        return connections[SESSION_ALIAS]
    if settings.DATABASE_POOLER == "pgbouncer":
        return None
    return connection


@lock_helper(LockRank.BILLING_RUN_SCOPE)
@contextmanager
def billing_run_scope_lock(*, scope: str) -> Iterator[bool]:
    """Try to take the scope's session advisory lock; yield whether it was taken.

    Session level, not transaction level: an inline run commits chunk after chunk and
    holds the lock across them; PostgreSQL releases it if the process dies (a killed
    `manage.py bill`), which is how the next starter knows the run was abandoned.
    Elsewhere (SQLite, or behind a transaction-mode pooler without a session connection)
    there is no such lock: yields True and the partial unique constraint on running runs
    is the only guard.
    """
    holder = _scope_lock_connection()
    if holder is None or holder.vendor != "postgresql":
        yield True
        return
    key = _scope_key(scope)
    with holder.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [BILLING_RUN_LOCK_SPACE, key])
        taken = bool(cursor.fetchone()[0])
    if taken:
        note_lock(LockRank.BILLING_RUN_SCOPE, keys=[key])
    try:
        yield taken
    finally:
        if taken:
            try:
                with holder.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [BILLING_RUN_LOCK_SPACE, key])
            except DatabaseError:  # connection gone: the server released the lock with the session
                logger.warning("billing run: could not release the scope lock %s", scope, exc_info=True)


USAGE_PARTITIONS_LOCK_KEY = zlib.crc32(b"billing.usage_partitions")


@lock_helper(LockRank.USAGE_PARTITIONS)
def usage_partitions_lock(*, using: str) -> None:
    """The usage partition manager's and the retention's lock (issue 20): a transaction-level
    advisory lock on PostgreSQL, so two beat runs never create or drop partitions at once."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [USAGE_PARTITIONS_LOCK_KEY])
    note_lock(LockRank.USAGE_PARTITIONS, keys=[USAGE_PARTITIONS_LOCK_KEY], using=using)


@lock_helper(LockRank.USAGE_DEFAULT_PARTITION)
def usage_default_partition_lock(*, using: str, table: str) -> None:
    """No event lands in the DEFAULT usage partition while a month's rows move out of it
    (SHARE ROW EXCLUSIVE: reads go on, inserts wait for the commit)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"LOCK TABLE {connections[using].ops.quote_name(table)} IN SHARE ROW EXCLUSIVE MODE")
    note_lock(LockRank.USAGE_DEFAULT_PARTITION, keys=None, using=using)
