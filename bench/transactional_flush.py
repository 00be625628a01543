"""A transactional test's flush: Django's (TRUNCATE + post_migrate) against tests/flush.py's
(TRUNCATE + one INSERT per table of the kept rows), alternated in one process.

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/test_tarif_mine \
        .venv/bin/python bench/transactional_flush.py --rounds 5

Point it at a migrated TEST database (pytest's `test_<name>`): it empties every table, as the
teardown of a transactional test does. Prints per round the wall and CPU seconds (this process)
and the number of queries of each flush, then the medians. Run it on a quiet machine for
absolute figures; on a loaded one only the ratio means something.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(flush: Callable[[], None]) -> tuple[float, float, int]:
    from django.db import connection  # deferred: Django is set up in main()
    from django.test.utils import CaptureQueriesContext  # deferred: Django is set up in main()

    wall, cpu = time.perf_counter(), time.process_time()
    with CaptureQueriesContext(connection) as queries:
        flush()
    return time.perf_counter() - wall, time.process_time() - cpu, len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    if not os.environ.get("DATABASE_URL", "").rsplit("/", 1)[-1].startswith("test_"):
        sys.exit("DATABASE_URL must name a test database (test_…): every table is emptied")
    import django  # deferred: settings are chosen above

    django.setup()
    from tests import flush  # deferred: needs Django set up

    flush.flush_keeping_migrated_rows(using="default")  # the first one: Django's flush + the snapshot
    results: dict[str, list[tuple[float, float, int]]] = {"django": [], "kept rows": []}
    for round_number in range(arguments.rounds):
        for name, run in (
            ("django", lambda: flush.flush_with_post_migrate(using="default")),
            ("kept rows", lambda: flush.flush_keeping_migrated_rows(using="default")),
        ):
            wall, cpu, queries = measure(run)
            results[name].append((wall, cpu, queries))
            print(f"round {round_number + 1} {name:9}: {wall:6.3f} s wall, {cpu:6.3f} s CPU, {queries} queries")
    for name, rows in results.items():
        print(
            f"median {name:9}: {statistics.median(r[0] for r in rows):6.3f} s wall, "
            f"{statistics.median(r[1] for r in rows):6.3f} s CPU, {rows[0][2]} queries"
        )


if __name__ == "__main__":
    main()
