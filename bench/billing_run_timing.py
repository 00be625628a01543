"""Timing of the billing run's chunks, for bench/billing_run.py (never imported by the product).

Per chunk: its wall time, the time from its number-series lock request to its commit
(`lock_wait_hold_s`), from holding the lock to the commit (`lock_hold_s`), its invoices, and
the process's peak resident memory after it. Inline, the bench wraps the chunk service; on
Celery workers this module is the worker's entry point (`python bench/billing_run_timing.py
--stats-dir DIR -- <celery worker arguments>`): the receivers are connected before the pool
forks, and each worker process appends one JSON line per chunk to DIR/<pid>.jsonl.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass
class ChunkTiming:
    chunk_s: float = 0.0
    lock_wait_hold_s: float = 0.0  # lock requested -> commit
    lock_hold_s: float = 0.0  # lock held -> commit
    invoices: int = 0
    maxrss_mb: float = 0.0
    pid: int = field(default_factory=os.getpid)


class Recorder:
    """Accumulates the lock times of the current chunk (one or more transactions)."""

    def __init__(self) -> None:
        self.current = ChunkTiming()
        self.started = 0.0
        self.requested = 0.0
        self.locked = 0.0

    def start_chunk(self) -> None:
        self.current = ChunkTiming()
        self.started = time.perf_counter()

    def end_chunk(self, invoices: int) -> ChunkTiming:
        timing = self.current
        timing.chunk_s = time.perf_counter() - self.started
        timing.invoices = invoices
        timing.maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return timing

    def on_lock(self, *, phase: str) -> None:
        now = time.perf_counter()
        TRACE.record(now, f"-- number lock {phase}")
        if phase == "requested":
            self.requested = now
        else:
            self.locked = now

    def committed(self) -> None:
        """Right after the database's COMMIT returned (before any on_commit callback)."""
        if not self.requested:
            return
        now = time.perf_counter()
        self.current.lock_wait_hold_s += now - self.requested
        self.current.lock_hold_s += now - (self.locked or self.requested)
        self.requested = self.locked = 0.0

    def rolled_back(self) -> None:
        self.requested = self.locked = 0.0


RECORDER = Recorder()


class StatementTrace:
    """Every statement of one chunk in order (SQL, COPY, COMMIT): its start offset from the
    chunk's start and its milliseconds, measured at the client (round trip included). The
    gaps between statements are Python time. `--trace-chunk N` prints it for chunk N."""

    def __init__(self) -> None:
        self.active = False
        self.started = 0.0
        self.rows: list[tuple[float, float, str]] = []

    def start(self) -> None:
        self.active, self.started, self.rows = True, time.perf_counter(), []

    def stop(self) -> None:
        self.active = False

    def record(self, began: float, label: str) -> None:
        if self.active:
            now = time.perf_counter()
            self.rows.append((1000 * (began - self.started), 1000 * (now - began), " ".join(label.split())))

    def execute_wrapper(self, execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.record(began, sql)

    def report(self, limit: int = 25) -> str:
        out = ["statements (start ms, ms, SQL) in order:"]
        out += [f"  {start:9.1f} {ms:8.1f}  {sql[:150]}" for start, ms, sql in self.rows]
        total = sum(ms for _start, ms, _sql in self.rows)
        out.append(f"statements: {len(self.rows)}, {total:.0f} ms in all; the slowest:")
        out += [f"  {ms:8.1f}  {sql[:150]}" for _start, ms, sql in sorted(self.rows, key=lambda row: -row[1])[:limit]]
        return "\n".join(out)


TRACE = StatementTrace()


def connect_trace() -> None:
    """Time COPY streams (psycopg) and COMMIT into TRACE; SQL statements need
    `connection.execute_wrapper(TRACE.execute_wrapper)` around the run."""
    from contextlib import contextmanager

    import psycopg
    from django.db.backends.base.base import BaseDatabaseWrapper

    original_copy = psycopg.Cursor.copy

    @contextmanager
    def timed_copy(self, statement, *args, **kwargs):
        began = time.perf_counter()
        with original_copy(self, statement, *args, **kwargs) as copy:
            yield copy
        TRACE.record(began, str(statement))

    psycopg.Cursor.copy = timed_copy
    commit = BaseDatabaseWrapper._commit

    def traced_commit(self):
        began = time.perf_counter()
        try:
            return commit(self)
        finally:
            TRACE.record(began, "COMMIT")

    BaseDatabaseWrapper._commit = traced_commit


def connect() -> None:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from invoices.services import finalize

    commit, rollback = BaseDatabaseWrapper._commit, BaseDatabaseWrapper._rollback

    def timed_commit(self):
        result = commit(self)
        RECORDER.committed()
        return result

    def timed_rollback(self):
        RECORDER.rolled_back()
        return rollback(self)

    BaseDatabaseWrapper._commit = timed_commit
    BaseDatabaseWrapper._rollback = timed_rollback

    hook = getattr(finalize, "number_lock_timing", None)
    if hook is not None:
        hook.connect(RECORDER.on_lock)
        return
    # Code from before issue 20 (for the "before" figures): the bulk issue locked its series in
    # the middle of `invoices_issue_bulk`; time its first lock per transaction the same way.
    original = finalize.number_series_lock

    def timed_lock(**kwargs):
        if RECORDER.requested:
            return original(**kwargs)
        RECORDER.on_lock(phase="requested")
        locked = original(**kwargs)
        RECORDER.on_lock(phase="locked")
        return locked

    finalize.number_series_lock = timed_lock


def backend_cpu_seconds(connection) -> float:
    """CPU seconds (user + system) the connection's PostgreSQL backend used so far, read from
    /proc (the database runs on this machine); -1 when it cannot be read."""
    if connection.vendor != "postgresql":
        return -1.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarize(timings: list[ChunkTiming]) -> dict[str, float]:
    """Totals over the chunks: the lock's share of chunk time and the per-brand ceiling."""
    if not timings:
        return {}
    chunk_s = sum(t.chunk_s for t in timings)
    hold_s = sum(t.lock_hold_s for t in timings)
    wait_hold_s = sum(t.lock_wait_hold_s for t in timings)
    invoices = sum(t.invoices for t in timings)
    mean_hold = hold_s / len(timings)
    by_pid: dict[int, list[float]] = {}
    for timing in timings:
        by_pid.setdefault(timing.pid, []).append(timing.maxrss_mb)
    return {
        "chunks": len(timings),
        "chunk_ms_mean": 1000 * chunk_s / len(timings),
        "lock_request_to_commit_ms_mean": 1000 * wait_hold_s / len(timings),
        "lock_hold_ms_mean": 1000 * mean_hold,
        "lock_share_request_to_commit": wait_hold_s / chunk_s,
        "lock_share_hold": hold_s / chunk_s,
        # One brand's series is held `mean_hold` per chunk: chunks of one brand can never
        # go faster than one after the other through it.
        "per_brand_ceiling_invoices_per_s": (invoices / len(timings)) / mean_hold if mean_hold else float("inf"),
        "maxrss_mb_first_chunk": max(rss[0] for rss in by_pid.values()),
        "maxrss_mb_last_chunk": max(rss[-1] for rss in by_pid.values()),
    }


def read_stats(directory: Path) -> list[ChunkTiming]:
    timings = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            timings.append(ChunkTiming(**json.loads(line)))
    return timings


def worker_main(argv: list[str]) -> None:
    """Celery worker whose processes record each chunk's timing."""
    stats_dir = Path(argv[argv.index("--stats-dir") + 1])
    celery_argv = argv[argv.index("--") + 1 :]
    from billing_run import setup_django  # bench/ is this script's directory

    setup_django(None, keep_broker=True)
    from celery.signals import task_postrun, task_prerun

    from config.celery import app

    connect()

    @task_prerun.connect(weak=False)
    def _prerun(task=None, **kwargs) -> None:
        if task is not None and task.name == "billing.run_chunk":
            RECORDER.start_chunk()

    @task_postrun.connect(weak=False)
    def _postrun(task=None, retval=None, **kwargs) -> None:
        if task is None or task.name != "billing.run_chunk":
            return
        invoices = retval.get("invoices", 0) if isinstance(retval, dict) else 0
        timing = RECORDER.end_chunk(invoices)
        with (stats_dir / f"{os.getpid()}.jsonl").open("a") as stats:
            stats.write(json.dumps(asdict(timing)) + "\n")

    app.worker_main(["worker", *celery_argv])


if __name__ == "__main__":
    worker_main(sys.argv[1:])
