"""CI must not pass by skipping: TARIF_CI_REQUIRE=postgres,broker,browser,replica,pgbouncer (set by .ci/run)
turns a skip of a PostgreSQL, broker or browser test into a failure.

The skip sites keep their plain `pytest.skip(reason)` / `skipif(reason=...)`; the kind of a
skip is read from its reason, which names what is missing (PostgreSQL / DATABASE_URL, the
broker / CELERY_BROKER_URL, Chromium / the browser). Imported by tests/conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

REQUIRE_VARIABLE = "TARIF_CI_REQUIRE"
KIND_MARKERS: dict[str, tuple[str, ...]] = {
    "postgres": ("postgresql", "postgres", "database_url"),
    "broker": ("broker", "celery_broker_url", "redis"),
    "browser": ("chromium", "browser", "playwright"),
    "replica": ("database_replica_url", "streaming replica"),
    "pgbouncer": ("tarif_pgbouncer_url", "pgbouncer"),
}


def required_kinds() -> set[str]:
    value = os.environ.get(REQUIRE_VARIABLE, "")
    return {kind.strip().lower() for kind in value.split(",") if kind.strip()}


def skip_kind(reason: str) -> str | None:
    """Which required part a skip reason says is missing, if any."""
    lowered = reason.lower()
    for kind, markers in KIND_MARKERS.items():
        if any(marker in lowered for marker in markers):
            return kind
    return None


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr or "")


def _fail_required_skip(report: Any) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    required = required_kinds()
    if not required:
        return
    reason = _skip_reason(report)
    kind = skip_kind(reason)
    if kind in required:
        report.outcome = "failed"
        report.longrepr = (
            f"{reason}\n{REQUIRE_VARIABLE} requires {kind} tests to run, not to be skipped: "
            "start what is missing (see .ci/run) or unset the variable."
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, None]:
    outcome = yield
    _fail_required_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    _fail_required_skip(outcome.get_result())
