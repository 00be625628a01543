"""`manage.py bill [--at ISO-DATETIME]`: run the billing for every due subscription-period.

Safe to run again at any time: what was billed is not billed twice, and a run that
was interrupted is completed by the next one. Only one run at a time per scope: a
second `bill` while one is running is refused. Exit codes: 0 done, 1 the run failed
(details printed), 2 bad arguments, 3 refused (another run is running for live
customers), 4 done, but some subscriptions could not be invoiced (listed; they are
retried by the next run).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, ngettext
from tqdm import tqdm

from billing.models import BillingRun, BillingRunFailure
from billing.selectors import due_subscriptions
from billing.services.billing_run import BillingRunAlreadyRunning, billing_run_start
from config import clock

EXIT_REFUSED = 3
EXIT_SUBSCRIPTIONS_FAILED = 4


def parse_at(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(
            gettext("--at: '%(value)s' is not an ISO 8601 date-time such as 2026-12-01T00:00:00Z") % {"value": value},
            returncode=2,
        )
    if parsed.tzinfo is None:
        raise CommandError(
            gettext("--at: '%(value)s' has no time zone; add Z or an offset such as +01:00") % {"value": value},
            returncode=2,
        )
    return parsed


class Command(BaseCommand):
    help = "Invoice every subscription whose period has ended (exactly once), with a progress bar."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--at", help="bill periods ending by this instant (ISO 8601 with zone); default: now")
        parser.add_argument("--chunk-size", type=int, default=None, help="subscriptions per chunk (default 500)")
        parser.add_argument("--inline", action="store_true", help="process chunks in this process, not Celery")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs instead)")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_at(options["at"]) if options["at"] else clock.system_now()
        if options["chunk_size"] is not None and options["chunk_size"] < 1:
            raise CommandError(gettext("--chunk-size must be at least 1"), returncode=2)
        total = due_subscriptions(as_of=as_of).count()
        self.stdout.write(f"Billing {total} due subscription(s) up to {as_of.isoformat()}")
        bar = tqdm(total=total, unit="sub", disable=options["no_progress"], file=self.stderr._out)

        def progress(run: BillingRun) -> None:
            bar.update(run.processed - bar.n)
            if options["verbosity"] >= 2:
                self.stdout.write(f"chunk committed: {run.processed}/{run.total}")
                self.stdout.flush()

        started = time.perf_counter()
        try:
            run = billing_run_start(
                as_of=as_of,
                chunk_size=options["chunk_size"],
                inline=True if options["inline"] else None,
                on_progress=progress,
            )
        except BillingRunAlreadyRunning as refused:
            bar.close()
            raise CommandError(refused.messages[0], returncode=EXIT_REFUSED) from refused
        while run.status == BillingRun.Status.RUNNING and not run.last_error:
            # Queued on Celery workers: follow the run's progress until it is done.
            time.sleep(0.5)
            run.refresh_from_db()
            progress(run)
        bar.close()
        elapsed = time.perf_counter() - started
        if run.status != BillingRun.Status.DONE:
            raise CommandError(
                gettext("Billing run %(run)s failed: %(error)s")
                % {"run": run.pk, "error": run.last_error or run.status}
            )
        rate = run.invoices_created / elapsed if elapsed else 0
        self.stdout.write(
            self.style.SUCCESS(
                f"Billing run {run.pk} done: {run.processed} subscription(s), {run.invoices_created} invoice(s) "
                f"in {elapsed:.1f} s ({rate:.0f} invoices/s)"
            )
        )
        if run.failures:
            for failure in BillingRunFailure.objects.filter(run=run).order_by("pk"):
                self.stderr.write(f"subscription {failure.subscription_id}: {failure.code}: {failure.message}")
            raise CommandError(
                ngettext(
                    "Billing run %(run)s: %(count)s subscription could not be invoiced (listed above); "
                    "the next run retries it.",
                    "Billing run %(run)s: %(count)s subscriptions could not be invoiced (listed above); "
                    "the next run retries them.",
                    run.failures,
                )
                % {"run": run.pk, "count": run.failures},
                returncode=EXIT_SUBSCRIPTIONS_FAILED,
            )
