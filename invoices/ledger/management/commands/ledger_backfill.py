"""manage.py ledger_backfill [--brand SLUG] [--dry-run]: post entries for existing documents and payments."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext
from tqdm import tqdm

from invoices.ledger.backfill import ledger_backfill
from invoices.models import Brand


class Command(BaseCommand):
    help = "Post journal entries for existing invoices, credit notes, payments and refunds (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--brand", help="Only this brand (its slug).")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be posted; write nothing.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (logs, CI).")

    def handle(self, *args: Any, **options: Any) -> None:
        brand_id = None
        if options["brand"]:
            brand_id = Brand.objects.filter(slug=options["brand"]).values_list("pk", flat=True).first()
            if brand_id is None:
                raise CommandError(gettext("No brand with the slug %(slug)r.") % {"slug": options["brand"]})
        progress = None
        if not options["no_progress"]:

            def progress(iterator, total):  # type: ignore[no-untyped-def]
                return tqdm(iterator, total=total, unit="movement", file=self.stderr)

        result = ledger_backfill(brand_id=brand_id, dry_run=options["dry_run"], progress=progress)
        verb = "would post" if options["dry_run"] else "posted"
        count = result["pending"] if options["dry_run"] else result["posted"]
        self.stdout.write(f"{result['movements']} movements, {verb} {count} entries.")
