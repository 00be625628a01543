"""`manage.py import_exchange_rates --file eurofxref-hist.csv` (or .xml, or --url): ECB rates
into the ledger's ExchangeRate table. Exit code 1 with the reason on a bad file."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from invoices.ledger.errors import LedgerError
from invoices.ledger.rates import MAX_DOWNLOAD_BYTES, exchange_rates_import, parse_rates


class Command(BaseCommand):
    help = "Import ECB exchange rates (CSV or XML) from a file or the configured URL."

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--file", help="An ECB CSV (eurofxref-hist.csv) or XML (eurofxref-hist.xml) file.")
        source.add_argument("--url", help="Download from this URL (default: TARIF_EXCHANGE_RATES_URL).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["file"]:
            path = Path(options["file"])
            try:
                data = path.read_bytes()
            except OSError as error:
                raise CommandError(_("Cannot read %(path)s: %(error)s") % {"path": path, "error": error}) from None
            name, source = path.name, f"file:{path.name}"
        else:
            url = options["url"] or settings.TARIF_EXCHANGE_RATES_URL
            if not url:
                raise CommandError(_("Give --file or --url, or set TARIF_EXCHANGE_RATES_URL."))
            if not url.startswith("https://"):
                raise CommandError(_("The rates URL must use https."))
            try:
                with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - https only, above
                    data = response.read(MAX_DOWNLOAD_BYTES + 1)
            except OSError as error:
                raise CommandError(_("Download failed: %(error)s") % {"error": error}) from None
            if len(data) > MAX_DOWNLOAD_BYTES:
                raise CommandError(_("The download is larger than the limit."))
            name, source = url.rsplit("/", 1)[-1], "url"
        try:
            result = exchange_rates_import(rows=parse_rates(data=data, name=name), source=source)
        except LedgerError as error:
            raise CommandError(error.message_text()) from None
        self.stdout.write(
            _("%(created)d rates added, %(updated)d updated, from %(first)s to %(last)s.")
            % {
                "created": result.created,
                "updated": result.updated,
                "first": result.first_day,
                "last": result.last_day,
            }
        )
