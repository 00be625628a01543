"""`make bench`: run every benchmark in bench/ with its default `make bench` size.

Each benchmark prints its figures last; docs/PERFORMANCE.md records them with the
command that produced them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# (script, arguments used by `make bench`)
BENCHMARKS: list[tuple[str, list[str]]] = [
    ("billing_run.py", ["--subscriptions", "10000"]),
    ("invoices_issue_bulk.py", ["--invoices", "10000"]),
    ("subscription_preview.py", ["--repeat", "300"]),
    ("render_pdf.py", ["--invoices", "100"]),
    ("api_load.py", ["--requests", "3000", "--clients", "8", "--workers", "4"]),
    ("reports.py", ["--subscriptions", "10000"]),
    ("entitlements.py", ["--customers", "10000", "--requests", "3000"]),
    ("checkout.py", ["--sessions", "200", "--requests", "2000"]),
    ("einvoicing.py", ["--submissions", "500", "--invoices", "100000"]),
    # Ledger overhead, small: one warm-up and one pair of runs (without, with) at 1,000.
    ("ledger.py", ["--subscriptions", "1000", "--rounds", "1"]),
    # Small dataset (PostgreSQL only): 2,000 subscriptions, every page's p95.
    (
        "scale.py",
        ["--build", "2000", "--usage-per-subscription", "5", "--repeat", "3", "--skip-billing-run", "--skip-usage"],
    ),
]


def main() -> int:
    failures = 0
    for script, arguments in BENCHMARKS:
        path = BENCH_DIR / script
        if not path.exists():
            print(f"== {script}: not written yet, skipped")
            continue
        print(f"== {script} {' '.join(arguments)}", flush=True)
        result = subprocess.run([sys.executable, str(path), *arguments], cwd=BENCH_DIR.parent)
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
