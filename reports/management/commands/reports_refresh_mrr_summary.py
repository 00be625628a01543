"""`manage.py reports_refresh_mrr_summary [--full]`: bring the MRR summary up to date now
(after a deploy, a change of TARIF_REPORTS_TIMEZONE, or an import of invoices), instead of
waiting for the beat task. Reports never refresh it themselves."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from reports.selectors import mrr_summary_status
from reports.summary import mrr_summary_refresh


class Command(BaseCommand):
    help = "Refresh the MRR summary the MRR reports read (incrementally; --full rebuilds it)."

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="rebuild every customer, not only the changed ones")

    def handle(self, *args, full: bool = False, **options):
        started = time.perf_counter()
        changed = mrr_summary_refresh(full=full)
        status = mrr_summary_status()
        recomputed = "every customer" if changed < 0 else f"{changed} customer(s)"
        self.stdout.write(
            f"MRR summary refreshed in {time.perf_counter() - started:.1f} s ({recomputed}); "
            f"figures as of {status.refreshed_at:%Y-%m-%d %H:%M:%S} UTC."
        )
