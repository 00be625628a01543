"""Repair the entitlements projection: rewrite the subscriptions whose rows differ from what they grant."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from tqdm import tqdm

from billing.entitlements.services import entitlements_rebuild


class Command(BaseCommand):
    help = (
        "Rewrite the entitlements of every subscription whose stored entitlements differ from what its status, "
        "items and products grant (after a restore, or when verify_integrity reports 'entitlements')."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        bar = tqdm(total=0, unit="sub", disable=options["no_progress"], file=self.stderr._out)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            changed = entitlements_rebuild(on_progress=progress)
        finally:
            bar.close()
        self.stdout.write(f"{changed} subscription(s) repaired.")
