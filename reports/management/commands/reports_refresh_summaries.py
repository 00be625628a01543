"""`manage.py reports_refresh_summaries [--full] [--only NAME]`: bring the month summaries of the
billed, invoices-by-status, revenue-recognition, receivables (AR aging, DSO) and payments
(payments, declines) reports up to date now (after a deploy, a
change of TARIF_REPORTS_TIMEZONE or an import of invoices), with a progress bar per summary."""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandParser

from reports.selectors import SUMMARY_NAMES, summary_status
from reports.summaries import report_summaries_refresh

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Refresh the reports' month summaries (the months changed since the last refresh; --full rebuilds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--full", action="store_true", help="rebuild every month, not only the changed ones")
        parser.add_argument("--only", choices=SUMMARY_NAMES, action="append", help="this summary only (repeatable)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, cron)")

    def handle(
        self,
        *args: object,
        full: bool = False,
        only: list[str] | None = None,
        no_progress: bool = False,
        **options: object,
    ) -> None:
        names = tuple(only or SUMMARY_NAMES)
        started: dict[str, float] = {}

        def progress(name: str, done: int, total: int) -> None:
            started.setdefault(name, time.perf_counter())
            if no_progress:
                return
            filled = BAR_WIDTH * done // total if total else BAR_WIDTH
            elapsed = time.perf_counter() - started[name]
            sys.stderr.write(
                f"\r{name:<22} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} months {elapsed:6.1f} s"
            )
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

        begun = time.perf_counter()
        results = report_summaries_refresh(full=full, names=names, progress=progress)
        for name, months in results.items():
            status = summary_status(name=name)
            recomputed = "every month" if months < 0 else f"{months} month(s)"
            assert status.refreshed_at is not None  # just refreshed
            self.stdout.write(
                f"{name}: {recomputed} recomputed; figures as of {status.refreshed_at:%Y-%m-%d %H:%M:%S} UTC."
            )
        self.stdout.write(f"Summaries refreshed in {time.perf_counter() - begun:.1f} s.")
