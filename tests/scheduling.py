"""The order in which `make test` hands test files to its xdist workers (`--dist loadfile`).

pytest-xdist queues files by their number of tests, most first (its "loadscope reorder"), so
the slowest files of the suite, which hold one to three long tests each (the failover drills,
the console sweeps in Chromium, the event-log migration replay), were handed out last: one
worker could then run a minute or two alone at the end while the other sat idle. Longest first
balances better: the files of HEAVIEST_FIRST (CI durations, slowest first) go first, then every
other file with a test marked `slow` or `browser`, then the rest by number of tests as xdist
did. `make test` passes `--no-loadscope-reorder` so that xdist keeps this order. Only the
workers' collection is reordered (the controller takes theirs): a run without xdist keeps the
usual order. Imported by tests/conftest.py.
"""

from __future__ import annotations

import pytest

# Whole-file seconds in CI (pytest --durations), slowest first; docs/PERFORMANCE.md, "Test suite time".
HEAVIEST_FIRST = (
    "tests/ops/test_failover_drill.py",
    "tests/browser/test_console_pages.py",
    "tests/ops/test_hostile_console_forms.py",
    "tests/browser/test_console_walk.py",
    "tests/ops/test_load.py",
    "tests/config/test_console_pages.py",
    "tests/config/events/test_migrations.py",
    "tests/browser/test_reports.py",
    "tests/ops/test_killed_worker.py",
    "tests/browser/test_customer_hub.py",
    "tests/config/test_console_money.py",
)


def _rank(path: str, items: list[pytest.Item]) -> tuple[int, int, int]:
    if path in HEAVIEST_FIRST:
        return (0, HEAVIEST_FIRST.index(path), 0)
    if any(item.get_closest_marker("slow") or item.get_closest_marker("browser") for item in items):
        return (1, 0, -len(items))
    return (2, 0, -len(items))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):
        return
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    ordered = sorted(files, key=lambda path: _rank(path, files[path]))  # stable: ties keep collection order
    items[:] = [item for path in ordered for item in files[path]]
