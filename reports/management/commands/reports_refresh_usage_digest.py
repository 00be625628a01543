"""`manage.py reports_refresh_usage_digest`: compute the usage report's digest now (its preset
periods: reports/usage_digest.py) after a deploy, a change of TARIF_REPORTS_TIMEZONE or a bulk
import of usage, instead of waiting for the beat task."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from reports.usage_digest import usage_digest_refresh


class Command(BaseCommand):
    help = "Refresh the usage report's digest (the page of the last 12 months, this month and last month)."

    def handle(self, *args, **options):
        started = time.perf_counter()
        rows = usage_digest_refresh()
        self.stdout.write(f"Usage digest refreshed in {time.perf_counter() - started:.1f} s ({rows} rows).")
