"""Browser tests: Playwright drives Debian's Chromium (never a downloaded browser).

Playwright cannot find Debian's Chromium through a channel, so the executable path is
given explicitly (TARIF_CHROMIUM, else the Debian locations). Without Chromium the
tests are skipped with the reason printed; .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # live_server + Playwright's event loop

CANDIDATES = (os.environ.get("TARIF_CHROMIUM", ""), "/usr/lib/chromium/chromium", "/usr/bin/chromium")


def chromium_path() -> str | None:
    for candidate in CANDIDATES:
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it)")
    return {
        **browser_type_launch_args,
        "executable_path": executable,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--headless",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ],
    }


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "locale": "fr-FR"}
