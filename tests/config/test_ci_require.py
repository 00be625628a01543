"""`.ci/run` fails (not skips) when a PostgreSQL, broker or browser test would be skipped:
it sets TARIF_CI_REQUIRE, and tests/ci_require.py turns those skips into failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SKIPPING_TESTS = """
import pytest

def test_needs_postgres():
    pytest.skip("needs PostgreSQL (set DATABASE_URL; CI runs it through .ci/run)")

@pytest.mark.skipif(True, reason="CELERY_BROKER_URL is not set: needs a real broker")
def test_needs_a_broker():
    pass

@pytest.fixture
def browser():
    pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it)")

def test_needs_a_browser(browser):
    pass

def test_skipped_for_another_reason():
    pytest.skip("products cannot be deleted from the console")
"""


def run_pytest(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text("from tests.ci_require import *  # noqa: F403\n")
    (tmp_path / "test_skips.py").write_text(SKIPPING_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    environment = {key: value for key, value in os.environ.items() if key != "TARIF_CI_REQUIRE"}
    environment.update(PYTHONPATH=str(ROOT), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    if require is not None:
        environment["TARIF_CI_REQUIRE"] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def not_passed(result: subprocess.CompletedProcess[str]) -> set[str]:
    """Tests reported FAILED or ERROR (a skip in a fixture or skipif fails at setup: an ERROR)."""
    summary = result.stdout.split("short test summary info")[-1]
    return {
        line.split("::", 1)[1].split()[0]
        for line in summary.splitlines()
        if line.startswith(("FAILED ", "ERROR ")) and "::" in line
    }


def test_without_the_requirement_those_tests_are_skipped(tmp_path):
    result = run_pytest(tmp_path, require=None)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 skipped" in result.stdout


def test_with_the_requirement_a_skipped_postgres_broker_or_browser_test_fails(tmp_path):
    result = run_pytest(tmp_path, require="postgres,broker,browser")

    assert result.returncode == 1, result.stdout + result.stderr
    assert not_passed(result) == {"test_needs_postgres", "test_needs_a_broker", "test_needs_a_browser"}
    assert "1 skipped" in result.stdout and "TARIF_CI_REQUIRE" in result.stdout


def test_only_the_required_kinds_fail(tmp_path):
    result = run_pytest(tmp_path, require="broker")

    assert result.returncode == 1, result.stdout + result.stderr
    assert not_passed(result) == {"test_needs_a_broker"}
    assert "3 skipped" in result.stdout


def test_the_suite_uses_the_hook_and_ci_sets_the_requirement():
    import tests.ci_require
    import tests.conftest

    assert tests.conftest.pytest_runtest_makereport is tests.ci_require.pytest_runtest_makereport
    assert "TARIF_CI_REQUIRE=postgres,broker,browser" in (ROOT / ".ci" / "run").read_text()
