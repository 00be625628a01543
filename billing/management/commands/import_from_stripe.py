"""`manage.py import_from_stripe [--dry-run]`: recreate a Stripe account's billing in Tarif.

The key comes from the environment (STRIPE_IMPORT_API_KEY, else the STRIPE_SECRET_KEY
setting), never from the command line (process lists and shell histories keep arguments);
its prefix decides the mode (sk_test_ -> test-mode objects, sk_live_ -> live). Safe to run
again: what was imported is found in the mapping table and left alone, and an interrupted
run resumes where it stopped (docs/migrating-from-stripe.md).

Exit codes: 0 done, everything mapped; 1 the run stopped (error printed; run again to
resume); 2 bad arguments or a refused key; 5 done, but some objects could not be mapped
(listed; with --dry-run: they would not be).
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext, ngettext
from tqdm import tqdm

from billing.models import StripeImportRun, TestClock
from billing.services.stripe_import import StripeImportError, stripe_import_run, stripe_import_start

EXIT_FAILED = 1
EXIT_BAD_ARGUMENTS = 2
EXIT_NOT_MAPPED = 5


class Command(BaseCommand):
    help = "Import products, prices, coupons, customers, payment methods and subscriptions from Stripe."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report what would be created; write nothing")
        parser.add_argument("--api-base", default=None, help="another Stripe API address (localstripe, a proxy)")
        parser.add_argument(
            "--open-invoices",
            choices=["report", "carry"],
            default="report",
            help="report: leave open invoices at Stripe (listed); carry: bill their balance on Tarif's next invoice",
        )
        parser.add_argument("--test-clock", type=int, default=None, help="test mode: put customers on this clock")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        api_key = os.environ.get("STRIPE_IMPORT_API_KEY") or getattr(settings, "STRIPE_SECRET_KEY", "")
        if not api_key:
            raise CommandError(
                gettext("Set STRIPE_IMPORT_API_KEY (or STRIPE_SECRET_KEY) to the account's key."), returncode=2
            )
        api_base = options["api_base"] if options["api_base"] is not None else getattr(settings, "STRIPE_API_HOST", "")
        clock = None
        if options["test_clock"] is not None:
            clock = TestClock.objects.filter(pk=options["test_clock"]).first()
            if clock is None:
                raise CommandError(
                    gettext("No test clock %(clock)s.") % {"clock": options["test_clock"]},
                    returncode=EXIT_BAD_ARGUMENTS,
                )
        try:
            run = stripe_import_start(
                api_key=api_key,
                api_base=api_base,
                dry_run=options["dry_run"],
                open_invoices=options["open_invoices"],
                test_clock=clock,
            )
        except StripeImportError as refused:
            raise CommandError(refused.message_text(), returncode=EXIT_BAD_ARGUMENTS) from refused
        resumed = " (resuming)" if run.stages_done or run.processed else ""
        mode = "live" if run.livemode else "test"
        self.stdout.write(f"Stripe import {run.pk}{resumed}: account {run.account_id or '?'}, {mode} mode")
        bar = tqdm(total=None, unit="obj", disable=options["no_progress"], file=self.stderr._out)

        def progress(current: StripeImportRun) -> None:
            bar.set_description(current.stage or "done")
            bar.update(current.processed - bar.n)

        try:
            stripe_import_run(run=run, on_progress=progress)
        except Exception as error:
            bar.close()
            raise CommandError(
                gettext("Stripe import %(run)s stopped: %(error)s. Run the command again to resume.")
                % {"run": run.pk, "error": run.last_error},
                returncode=EXIT_FAILED,
            ) from error
        bar.close()
        self._summary(run)
        if run.report:
            raise CommandError(
                ngettext(
                    "%(count)s object could not be mapped (listed above).",
                    "%(count)s objects could not be mapped (listed above).",
                    len(run.report),
                )
                % {"count": len(run.report)},
                returncode=EXIT_NOT_MAPPED,
            )

    def _summary(self, run: StripeImportRun) -> None:
        verb = "would be imported" if run.dry_run else "imported"
        for stage, counts in run.counts.items():
            if counts:
                parts = ", ".join(f"{outcome} {number}" for outcome, number in sorted(counts.items()))
                self.stdout.write(f"  {stage}: {parts}")
        for row in run.report:
            self.stderr.write(f"not mapped: {row['type']} {row['id']}: {row['code']}: {row['reason']}")
        self.stdout.write(self.style.SUCCESS(f"Stripe import {run.pk} done ({verb})."))
