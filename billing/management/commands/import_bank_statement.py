"""`manage.py import_bank_statement FILE [--format csv|camt053] [--user NAME]`: import and match a statement.

For statements a bank drops on a server: the same import as the console's (one
transaction, known lines skipped, new lines matched). A malformed file exits with
status 2 and imports nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext

from billing.bank_import import StatementImportError, bank_statement_import

EXTENSIONS = {".csv": "csv", ".txt": "csv", ".xml": "camt053"}


class Command(BaseCommand):
    help = "Import a bank statement (CSV or CAMT.053 XML) and match its credits with open invoices."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="path of the statement file")
        parser.add_argument("--format", choices=["csv", "camt053"], help="default: from the file extension")
        parser.add_argument("--user", help="username recorded as the importer")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(gettext("No file %(path)s.") % {"path": path}, returncode=2)
        source_format = options["format"] or EXTENSIONS.get(path.suffix.lower())
        if source_format is None:
            raise CommandError(
                gettext("Cannot tell the format of %(name)s: pass --format csv or camt053.") % {"name": path.name},
                returncode=2,
            )
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(gettext("No user %(user)r.") % {"user": options["user"]}, returncode=2)
        try:
            summary = bank_statement_import(
                data=path.read_bytes(), source_format=source_format, file_name=path.name, acting_user=user
            )
        except StatementImportError as error:
            raise CommandError(
                gettext("%(name)s: %(error)s Nothing was imported.") % {"name": path.name, "error": error}, returncode=2
            ) from error
        for statement in summary.statements:
            counts = {status: 0 for status in ("matched", "partially_matched", "unmatched")}
            for status in statement.lines.values_list("status", flat=True):
                counts[status] = counts.get(status, 0) + 1
            self.stdout.write(
                f"{statement.account} {statement.statement_id}: {counts['matched']} matched, "
                f"{counts['partially_matched']} partially matched, {counts['unmatched']} unmatched."
            )
        self.stdout.write(
            self.style.SUCCESS(f"{summary.new_lines} new line(s), {summary.skipped_lines} already imported.")
        )
