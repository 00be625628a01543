"""The one lock order of Tarif, and the checker that enforces it (docs/billing.md, "Lock order").

Every row lock (`select_for_update`) and advisory lock lives in a helper of an app's
`locks.py`, declared with `@lock_helper(LockRank.X)`. A transaction takes its locks in
ascending rank; rows of one rank in ascending primary key. When every transaction does
that, no two of them can wait for each other in a cycle, so no deadlock is possible
between them (tests/config/test_locking.py checks the static half: every lock call is
in a `locks.py`; and runs every pair of helpers in both orders).

The checker is on in the test settings and under DEBUG (`TARIF_LOCK_ORDER_CHECKS`): it
notes the ranks and keys each transaction locks and raises `LockOrderViolation` when a
lock comes after a higher rank, or after a higher key of its own rank. Re-locking a row
the transaction already holds never waits, so it is always allowed.

A leaf module: imports no app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from functools import wraps
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Model, QuerySet


class LockRank(IntEnum):
    """Lower ranks are taken first. Keep in step with the table in docs/billing.md."""

    BILLING_RUN_SCOPE = 10  # advisory lock (session level, try-lock: never waits)
    USAGE_PARTITIONS = 12  # issue 20: the usage partition manager / retention (advisory, transaction level)
    USAGE_DEFAULT_PARTITION = 14  # issue 20: the DEFAULT usage partition while a month's rows move out
    TEST_CLOCK = 20
    HANDOFF = 30  # claimed with SKIP LOCKED: never waits
    EVENT_CURSOR = 40  # a consumer's batch runs under its cursor
    WEBHOOK_ENDPOINT = 50  # fan-out cursor of one endpoint
    MRR_SUMMARY = 60  # the reports' summary refresh
    REPORT_SUMMARY = 62  # issue 20: one month summary of the reports (billed, status, recognition)
    STRIPE_IMPORT_RUN = 70  # one unfinished Stripe import per account: resumed, not doubled
    CHECKOUT_SESSION = 85  # issue 17: completion creates the customer, subscription, invoice after it
    QUOTE = 90  # a quote's acceptance creates its subscription under the quote's lock
    QUOTE_SERIES = 95  # a brand's quote numbers: nothing else is locked after it
    SUBSCRIPTION = 100
    PROMOTION_CODE = 110
    COUPON = 120
    CUSTOMER = 200  # also stands for the customer's balance
    PAYMENT_METHOD = 210
    INVITATION = 220  # feedback survey invitation (after its customer)
    NOTIFICATION_LOG = 230
    INVOICE = 300
    WALLET = 302  # prepaid credits (issue 16): after the invoice that consumes or returns them
    CREDIT_GRANT = 304
    CREDIT_NOTE = 310
    PAYMENT = 320
    REFUND = 330
    DUNNING_CASE = 340
    BANK_STATEMENT_LINE = 350
    EREPORTING_PERIOD = 440  # issue 18: one e-reporting period (after the PA account whose poll hands it a status)
    SANDBOX_SETUP_SESSION = 400  # the built-in sandbox gateway's own rows
    SANDBOX_CHARGE = 410
    EINVOICING_ACCOUNT = 420  # issue 18: a PA account's status-poll cursor (its own transaction)
    EINVOICING_TRANSMISSION = 430  # issue 18: claimed with SKIP LOCKED to submit; locked to record a status
    NUMBER_SEQUENCE = 900  # held until commit, it serializes a brand's finalizations
    # Issue 19 (ledger): postings come last in a money movement's transaction.
    REVENUE_SCHEDULE = 905  # a recognition run's deferred-revenue schedules (SKIP LOCKED), then its postings
    ACCOUNTING_PERIOD = 910  # a month's period: postings share it (trigger FOR SHARE), a close locks it
    JOURNAL_SEQUENCE = 920  # a journal's entry numbers per fiscal year: taken only by validation (and a close)
    ARCHIVE_HEAD = 950  # issue 18: the archive's chain head, after anything a finalization locks


class LockOrderViolation(AssertionError):
    """A lock taken against the written order: a possible deadlock. A bug, never a user error."""


# -- helpers' registry ------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])

#: "module.function" -> rank, for every helper declared with @lock_helper (the pair test reads it).
LOCK_HELPERS: dict[str, LockRank] = {}


def lock_helper(rank: LockRank) -> Callable[[F], F]:
    """Declare a lock helper's rank. A queryset it returns notes its locks when evaluated."""

    def decorate(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            if isinstance(result, QuerySet):
                return ranked(result, rank)
            return result

        wrapper.lock_rank = rank  # type: ignore[attr-defined]
        LOCK_HELPERS[f"{func.__module__}.{func.__qualname__}"] = rank
        return wrapper  # type: ignore[return-value]

    return decorate


M = TypeVar("M", bound=Model)
_ranked_classes: dict[type, type] = {}


class _RankedQuerySetMixin:
    """Notes the rows a locking queryset returned, with its rank, once it is evaluated."""

    _lock_rank: LockRank

    def _clone(self) -> Any:
        clone = super()._clone()  # type: ignore[misc]
        clone._lock_rank = self._lock_rank
        return clone

    def _fetch_all(self) -> None:
        fresh = self._result_cache is None  # type: ignore[attr-defined]
        super()._fetch_all()  # type: ignore[misc]
        query = self.query  # type: ignore[attr-defined]
        if fresh and self._result_cache and query.select_for_update:  # type: ignore[attr-defined]
            # SKIP LOCKED and NOWAIT never wait: the order of rows within such a statement is free.
            waits = not (query.select_for_update_skip_locked or query.select_for_update_nowait)
            note_lock(self._lock_rank, keys=_keys(self), using=self.db, in_key_order=waits)  # type: ignore[attr-defined]

    def create(self, **kwargs: Any) -> Any:
        # A row inserted through a locking queryset (`get_or_create` of a number series the
        # first time it is used) is held by this transaction until it ends, like a locked one.
        row = super().create(**kwargs)  # type: ignore[misc]
        if self.query.select_for_update:  # type: ignore[attr-defined]
            note_lock(self._lock_rank, keys=[row.pk], using=self.db)  # type: ignore[attr-defined]
        return row


def ranked(queryset: QuerySet[M], rank: LockRank) -> QuerySet[M]:
    """`queryset` (a select_for_update one) marked with its rank for the checker."""
    base = type(queryset)
    if isinstance(queryset, _RankedQuerySetMixin):
        clone = queryset._chain()  # type: ignore[attr-defined]
        clone._lock_rank = rank
        return clone
    cls = _ranked_classes.get(base)
    if cls is None:
        cls = type(f"Ranked{base.__name__}", (_RankedQuerySetMixin, base), {})
        _ranked_classes[base] = cls
    clone = queryset._chain()  # type: ignore[attr-defined]
    clone.__class__ = cls
    clone._lock_rank = rank
    return clone


def _keys(queryset: Any) -> list[Any] | None:
    """The primary keys of the locked rows, in the order they were locked (None: unknown)."""
    rows = queryset._result_cache
    fields = queryset._fields
    if not fields:
        if isinstance(rows[0], Model):
            return [row.pk for row in rows]
        return None
    if fields[0] not in ("pk", "id", queryset.model._meta.pk.attname):
        return None
    first = rows[0]
    if isinstance(first, dict):
        return [row[fields[0]] for row in rows]
    if isinstance(first, tuple):
        return [row[0] for row in rows]
    return list(rows)


# -- the checker ------------------------------------------------------------------------------

_settings_lock = threading.Lock()
_enabled = False
#: Every violation seen (also raised); the test suite fails a test that caused one, even when
#: the code under test swallowed the exception (the billing run records failures, for example).
violations: list[str] = []


class _Held:
    """What the current transaction locked: rank -> key -> depth of the atomic block that locked it."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: dict[LockRank, dict[Any, int]] = {}

    def forget_from(self, depth: int) -> None:
        """A savepoint at `depth` was rolled back: PostgreSQL released the row locks taken inside it."""
        for rank in list(self.keys):
            self.keys[rank] = {key: at for key, at in self.keys[rank].items() if at < depth}
            if not self.keys[rank]:
                del self.keys[rank]

    def keep_from(self, depth: int) -> None:
        """A savepoint at `depth` was released: its locks now belong to the enclosing block."""
        for taken in self.keys.values():
            for key, at in taken.items():
                if at >= depth:
                    taken[key] = depth - 1


def _effective_depth(connection: Any) -> int:
    """Atomic blocks of the code under test (the test case's own wrapping blocks excluded)."""
    return sum(1 for block in connection.atomic_blocks if not getattr(block, "_from_testcase", False))


def _held(connection: Any) -> _Held:
    held = getattr(connection, "_tarif_locks_held", None)
    if held is None:
        held = connection._tarif_locks_held = _Held()
    return held


def note_lock(
    rank: LockRank, *, keys: Iterable[Any] | None, using: str = DEFAULT_DB_ALIAS, in_key_order: bool = True
) -> None:
    """Record that the current transaction locked `keys` (primary keys, advisory keys) of `rank`.

    Raises LockOrderViolation when the checker is on and the lock breaks the order.
    """
    if not _enabled:
        return
    connection = connections[using]
    if not connection.in_atomic_block or _effective_depth(connection) == 0:
        return  # autocommit (the lock ends with the statement), or a test's own set-up
    keys = None if keys is None else list(keys)
    held = _held(connection)
    problem = ""
    exempt = getattr(connection, "_tarif_lock_exempt", 0) > 0
    if in_key_order and not exempt and keys is not None and keys != sorted(keys):
        problem = f"{rank.name} rows locked out of key order in one statement: {keys}"
    mine = held.keys.get(rank, {})
    new = None if keys is None else [key for key in keys if key not in mine]
    if not problem and not exempt and (new is None or new):
        higher = [other for other in held.keys if other > rank]
        if higher:
            problem = f"{rank.name} locked after {max(higher).name}"
        else:
            known = [key for key in mine if key is not None]
            if new and known and min(new) < max(known):
                problem = f"{rank.name} {min(new)!r} locked after {rank.name} {max(known)!r} (keys go up)"
    depth = len(connection.atomic_blocks)
    taken = held.keys.setdefault(rank, {})
    for key in keys if keys is not None else [None]:
        taken.setdefault(key, depth)
    if problem:
        message = f"Lock order violation: {problem}; held: " + ", ".join(
            f"{other.name}{sorted(held_keys, key=str)}" for other, held_keys in sorted(held.keys.items())
        )
        with _settings_lock:
            violations.append(message)
        raise LockOrderViolation(message)


@contextmanager
def lock_order_exempt(reason: str, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Known exceptions to the order, each listed in docs/billing.md ("Known exceptions") with
    its reason: locks taken inside are noted but not checked. Keep this list empty."""
    if not reason:
        raise ValueError("say why the order cannot be kept here")
    connection: Any = connections[using]
    connection._tarif_lock_exempt = getattr(connection, "_tarif_lock_exempt", 0) + 1
    try:
        yield
    finally:
        connection._tarif_lock_exempt -= 1


def locks_held(using: str = DEFAULT_DB_ALIAS) -> dict[LockRank, set[Any]]:
    """What the checker saw the current transaction lock (for tests)."""
    return {rank: set(keys) for rank, keys in _held(connections[using]).keys.items()}


_original_enter: Callable[..., Any] | None = None
_original_exit: Callable[..., Any] | None = None


def _enter(self: transaction.Atomic) -> Any:
    assert _original_enter is not None
    result = _original_enter(self)
    connection = transaction.get_connection(self.using)
    if _effective_depth(connection) == 1:
        # A new transaction of the code under test begins: nothing is held yet.
        _held(connection).keys.clear()
    return result


def _exit(self: transaction.Atomic, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
    assert _original_exit is not None
    connection = transaction.get_connection(self.using)
    depth = len(connection.atomic_blocks)
    savepoint = connection.savepoint_ids[-1] if connection.savepoint_ids else None
    rolled_back = exc_type is not None or connection.needs_rollback
    try:
        return _original_exit(self, exc_type, exc_value, traceback)
    finally:
        if rolled_back and savepoint is not None:
            _held(connection).forget_from(depth)
        elif not rolled_back:
            _held(connection).keep_from(depth)


def enable_lock_order_checks() -> None:
    """Turn the checker on for this process (test settings, DEBUG). Idempotent.

    Django has no hook for "a transaction begins" or "a savepoint was rolled back", so
    `Atomic.__enter__` is wrapped to forget the previous transaction's locks when the
    outermost block of the code under test opens (a test case's wrapping transaction
    does not count), and `Atomic.__exit__` to forget the locks taken inside a savepoint
    that rolled back (PostgreSQL releases them).
    """
    global _enabled, _original_enter, _original_exit
    with _settings_lock:
        if _original_enter is None:
            _original_enter, _original_exit = transaction.Atomic.__enter__, transaction.Atomic.__exit__
            transaction.Atomic.__enter__ = _enter  # type: ignore[method-assign]
            transaction.Atomic.__exit__ = _exit  # type: ignore[method-assign]
        _enabled = True


def disable_lock_order_checks() -> None:
    global _enabled
    _enabled = False


def lock_order_checks_enabled() -> bool:
    return _enabled
