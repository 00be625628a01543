"""Ledger benchmark (issue 19): the billing run's time with and without ledger postings.

    DATABASE_URL=postgres://... .venv/bin/python bench/ledger.py --subscriptions 100000

Seeds the billing run benchmark's catalog (bench/billing_run.py) and runs the billing run
inline with TARIF_LEDGER_ENABLED off and on, then prints the median time of each and the
overhead of the postings (target: at most 15 % at N = 100,000).

Fair by construction: the first run on a freshly seeded database is always slower (cold
caches, tables not analysed yet, Python imports), whatever it runs. So after seeding and
ANALYZE, one warm-up run is discarded; then the runs alternate (without, with, without,
with ... `--rounds` pairs), each on the same data: the tables are emptied (RESTART IDENTITY)
and reseeded from the same random seed, the brand's chart of accounts loaded (configuration a
brand has before its billing run, for both sides), then analysed, before every run. The median of each
side is compared, and every run's time is printed in order so a drift shows.

Postings are unnumbered; the validation that numbers them (a nightly job, outside the billing
run) is timed on its own after the last run (a "with" run). Then checks the ledger: one sales
entry per invoice, numbered continuously, debits equal credits. Empties the database named by
DATABASE_URL first: never point it at real data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import billing_run  # noqa: E402 - the sibling benchmark's seed and reset


def _empty_ledger() -> None:
    from django.db import connection

    tables = [
        "ledger_revenueschedule",
        "ledger_journalline",
        "ledger_journalentry",
        "ledger_journalsequence",
        "ledger_accountingperiod",
        "ledger_accountmapping",
        "ledger_account",
        "ledger_ledgersettings",
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The guard on issued documents and the ledger (invoices 0007, ledger 0001): a
            # benchmark database may be emptied, on purpose, by its owner.
            cursor.execute("SET tarif.allow_truncate = on")
            cursor.execute("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE")
        else:  # SQLite has no row triggers here: plain deletes
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")


def _prepare(count: int, due_at: datetime) -> None:
    """The same data before every run: empty, reseed (same random seed, ids from 1), analyse."""
    from django.db import connection

    from invoices.ledger.services import chart_load, ledger_settings_get
    from invoices.models import Brand

    _empty_ledger()
    billing_run.reset_database()
    billing_run.seed(count, due_at)
    # The brand's chart and ledger settings are configuration it has before any billing run:
    # set up (untimed) for both sides, so the "with" runs do not pay a one-off chart load.
    for brand in Brand.objects.order_by("pk"):
        ledger_settings_get(brand=brand)
        chart_load(brand=brand)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def _run(count: int, chunk_size: int, *, ledger: bool) -> tuple[float, float, float]:
    """(wall seconds, this process's CPU seconds, its PostgreSQL backend's CPU seconds) of one
    inline billing run. The CPU times are less disturbed than the wall time on a shared machine,
    and the ledger's cost is mostly the database's (its COPYs, triggers and checks)."""
    from billing_run_timing import backend_cpu_seconds
    from django.conf import settings
    from django.db import connection

    from billing.services.billing_run import billing_run_start

    due_at = datetime(2026, 12, 1, tzinfo=UTC)
    _prepare(count, due_at)
    settings.TARIF_LEDGER_ENABLED = ledger
    server_started = backend_cpu_seconds(connection)
    started, cpu_started = time.perf_counter(), time.process_time()
    run = billing_run_start(as_of=due_at, inline=True, chunk_size=chunk_size)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    server = backend_cpu_seconds(connection) - server_started if server_started >= 0 else -1.0
    assert run.invoices_created == count, (run.invoices_created, count)
    return elapsed, cpu, server


def run_order(rounds: int) -> list[bool]:
    """Which runs to time, in order (True: with the ledger): without, with, without, with ..."""
    return [ledger for _round in range(rounds) for ledger in (False, True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=1_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs (without, with), after one warm-up")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false", help="skip the discarded first run")
    arguments = parser.parse_args()
    if arguments.subscriptions < 1:
        parser.error("--subscriptions must be at least 1")
    if arguments.rounds < 1:
        parser.error("--rounds must be at least 1")
    billing_run.setup_django(arguments.database_url)

    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Sum

    from invoices.ledger.models import JournalEntry, JournalLine
    from invoices.models import Invoice

    call_command("migrate", verbosity=0)
    warm_up = None
    if arguments.warm_up:
        warm_up, _cpu, _server = _run(arguments.subscriptions, arguments.chunk_size, ledger=True)
        print(f"warm-up (discarded, with ledger): {warm_up:.2f} s", flush=True)
    times: dict[bool, list[float]] = {False: [], True: []}
    cpu_times: dict[bool, list[float]] = {False: [], True: []}
    server_times: dict[bool, list[float]] = {False: [], True: []}
    for ledger in run_order(arguments.rounds):
        seconds, cpu, server = _run(arguments.subscriptions, arguments.chunk_size, ledger=ledger)
        times[ledger].append(seconds)
        cpu_times[ledger].append(cpu)
        server_times[ledger].append(server)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"run {'with' if ledger else 'without'} ledger: {seconds:.2f} s"
            f" (CPU {cpu:.2f} s, PostgreSQL CPU {server:.2f} s, load {load:.1f})",
            flush=True,
        )
    without = statistics.median(times[False])
    with_ledger = statistics.median(times[True])
    cpu_without = statistics.median(cpu_times[False])
    cpu_with = statistics.median(cpu_times[True])

    from invoices.ledger.services import ledger_entries_validate
    from invoices.models import Brand

    started = time.perf_counter()
    for brand in Brand.objects.order_by("pk"):
        ledger_entries_validate(brand=brand, livemode=True, up_to=datetime(2026, 12, 31, tzinfo=UTC).date())
    validation = time.perf_counter() - started
    # An unnumbered entry (None) counts as 0: the continuity check below then fails.
    vt_numbers = JournalEntry.objects.filter(journal="VT").values_list("number", flat=True)
    numbers = sorted(number or 0 for number in vt_numbers)
    assert numbers == list(range(1, len(numbers) + 1)), "validation left a gap or an unnumbered entry"

    issued = Invoice.objects.filter(billing_reason="subscription_cycle").exclude(status="draft").count()
    entries = JournalEntry.objects.filter(source_type="invoice", movement="invoice_finalized").count()
    totals = JournalLine.objects.aggregate(debit=Sum("debit"), credit=Sum("credit"))
    assert entries == issued, (entries, issued)
    assert totals["debit"] == totals["credit"], totals
    overhead = (with_ledger - without) / without * 100
    print(f"database: {connection.vendor}")
    print(f"subscriptions: {arguments.subscriptions}")
    print(f"rounds: {arguments.rounds} (order: without, with, ...; warm-up {'discarded' if warm_up else 'skipped'})")
    print(f"runs_without_ledger: {', '.join(f'{t:.2f}' for t in times[False])}")
    print(f"runs_with_ledger: {', '.join(f'{t:.2f}' for t in times[True])}")
    print(f"seconds_without_ledger (median): {without:.2f}")
    print(f"seconds_with_ledger (median): {with_ledger:.2f}")
    print(f"journal_entries: {entries}")
    print(f"seconds_validation (nightly, not in the run): {validation:.2f}")
    print(f"cpu_seconds_without_ledger (median): {cpu_without:.2f}")
    print(f"cpu_seconds_with_ledger (median): {cpu_with:.2f}")
    print(f"ledger_overhead_cpu_percent (this process only): {(cpu_with - cpu_without) / cpu_without * 100:.1f}")
    server_without = statistics.median(server_times[False])
    server_with = statistics.median(server_times[True])
    if server_without > 0:
        total_without, total_with = cpu_without + server_without, cpu_with + server_with
        print(f"postgresql_cpu_seconds_without_ledger (median): {server_without:.2f}")
        print(f"postgresql_cpu_seconds_with_ledger (median): {server_with:.2f}")
        total_overhead = (total_with - total_without) / total_without * 100
        print(f"ledger_overhead_total_cpu_percent (process + its backend): {total_overhead:.1f}")
        per_invoice = 1000 * (total_with - total_without) / arguments.subscriptions
        print(f"ledger_cpu_ms_per_invoice (process + backend): {per_invoice:.3f}")
    print(f"ledger_overhead_percent: {overhead:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
