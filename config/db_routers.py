"""Read replicas (issue 20, docs/scaling.md): reports, exports and the API's GET lists may read
from a streaming replica; everything else reads and writes the primary (read-your-writes).

Nothing goes to the replica by default. A read opts in explicitly, by `with use_replica():` or
`@use_replica()`; the block's ORM reads then go to the `replica` alias (DATABASE_REPLICA_URL)
and raw SQL takes `read_connection()`. The choice is made once, when the block starts, by a
lag guard: the replica is used only if it answers and its replay lag (`now() -
pg_last_xact_replay_timestamp()` while WAL is still waiting to be replayed) is at most
TARIF_REPLICA_MAX_LAG_SECONDS; the verdict is cached for TARIF_REPLICA_CHECK_SECONDS per
process. Otherwise the block reads the primary, and the fallback is logged and counted
(`tarif_replica_fallbacks_total{reason}`).

Writes never go to the replica: `db_for_write` sends an object read from it to the primary,
migrations run on the primary only, and the replica's connections are opened read-only.
A block entered inside a transaction of the primary reads the primary too: that transaction's
own uncommitted writes exist nowhere else.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ContextDecorator
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from prometheus_client import Counter, Gauge

logger = logging.getLogger(__name__)

REPLICA = "replica"

REPLICA_FALLBACKS = Counter(
    "tarif_replica_fallbacks",
    "Reads meant for the replica that went to the primary, by reason (lag, down, disabled).",
    ["reason"],
)
REPLICA_LAG = Gauge("tarif_replica_lag_seconds", "The replica's replay lag at the last check (this process).")

# The alias reads of the current block go to (None: Django's default routing, the primary).
_read_alias: ContextVar[str | None] = ContextVar("tarif_read_alias", default=None)


@dataclass(frozen=True, slots=True)
class ReplicaVerdict:
    usable: bool
    reason: str  # "ok", "lag", "down", "disabled", "not_configured", "in_transaction"
    lag_seconds: float | None
    checked_at: float  # time.monotonic()


_verdict_lock = threading.Lock()
_verdict: ReplicaVerdict | None = None


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


def replica_state_reset() -> None:
    """Forget the cached verdict (tests; an operator's shell after fixing the replica)."""
    global _verdict
    with _verdict_lock:
        _verdict = None


def replica_lag_seconds(*, alias: str = REPLICA) -> float:
    """The replica's replay lag in seconds: 0 when it has replayed all the WAL it received (an idle
    primary sends nothing, so an old last-replay time alone is not lag). Raises DatabaseError
    when the replica does not answer."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0 "
            "WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
            "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
        )
        (lag,) = cursor.fetchone()
    return max(float(lag), 0.0)


def _check_replica() -> ReplicaVerdict:
    now = time.monotonic()
    try:
        lag = replica_lag_seconds()
    except Exception:  # refused, timed out, or not allowed here: the primary answers instead
        logger.warning("replica: unavailable, reading from the primary", exc_info=True)
        try:
            connections[REPLICA].close()  # reconnect at the next check
        except Exception:  # the connection is already gone
            logger.debug("replica: closing the broken connection failed", exc_info=True)
        return ReplicaVerdict(usable=False, reason="down", lag_seconds=None, checked_at=now)
    REPLICA_LAG.set(lag)
    if lag > settings.TARIF_REPLICA_MAX_LAG_SECONDS:
        logger.warning(
            "replica: %.1f s behind (more than %s s), reading from the primary",
            lag,
            settings.TARIF_REPLICA_MAX_LAG_SECONDS,
        )
        return ReplicaVerdict(usable=False, reason="lag", lag_seconds=lag, checked_at=now)
    return ReplicaVerdict(usable=True, reason="ok", lag_seconds=lag, checked_at=now)


def replica_verdict() -> ReplicaVerdict:
    """Whether reads may go to the replica now (cached TARIF_REPLICA_CHECK_SECONDS per process)."""
    global _verdict
    if not replica_configured():
        return ReplicaVerdict(usable=False, reason="not_configured", lag_seconds=None, checked_at=time.monotonic())
    if not settings.TARIF_REPLICA_ENABLED:
        return ReplicaVerdict(usable=False, reason="disabled", lag_seconds=None, checked_at=time.monotonic())
    with _verdict_lock:
        cached = _verdict
        if cached is not None and time.monotonic() - cached.checked_at < settings.TARIF_REPLICA_CHECK_SECONDS:
            return cached
        _verdict = _check_replica()
        return _verdict


def replica_alias_for_read() -> str:
    """The alias a `use_replica` block starting now reads from: the replica, or the primary."""
    if not replica_configured():
        return DEFAULT_DB_ALIAS
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS  # read-your-writes: this transaction's rows are on the primary only
    verdict = replica_verdict()
    if verdict.usable:
        return REPLICA
    REPLICA_FALLBACKS.labels(reason=verdict.reason).inc()
    return DEFAULT_DB_ALIAS


class use_replica(ContextDecorator):  # noqa: N801 (used like contextlib's lower-case helpers)
    """Send the reads of this block (or of the decorated function) to the replica when the lag
    guard allows it. Nested blocks keep the outer block's choice."""

    def __init__(self) -> None:
        self._token: Token[str | None] | None = None

    def _recreate_cm(self) -> use_replica:
        return type(self)()  # a fresh instance per call of a decorated function (recursion, threads)

    def __enter__(self) -> str:
        current = _read_alias.get()
        alias = current if current is not None else replica_alias_for_read()
        self._token = _read_alias.set(alias)
        return alias

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _read_alias.reset(self._token)
            self._token = None


def current_read_alias() -> str:
    return _read_alias.get() or DEFAULT_DB_ALIAS


def read_connection() -> BaseDatabaseWrapper:
    """The connection raw read-only SQL should use: the replica inside a `use_replica` block that
    chose it, the primary otherwise."""
    return connections[current_read_alias()]


class ReplicaRouter:
    """DATABASE_ROUTERS entry: reads follow `use_replica`, writes and migrations stay on the primary."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return _read_alias.get()

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        instance = hints.get("instance")
        if instance is not None and getattr(instance._state, "db", None) == REPLICA:
            return DEFAULT_DB_ALIAS  # an object read from the replica is saved on the primary
        return None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        pair = {obj1._state.db or DEFAULT_DB_ALIAS, obj2._state.db or DEFAULT_DB_ALIAS}
        if REPLICA in pair and pair <= {REPLICA, DEFAULT_DB_ALIAS}:
            return True  # the same rows: the replica is a copy of the primary
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        if db == REPLICA:
            return False
        return None
