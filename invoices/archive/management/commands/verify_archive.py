"""`manage.py verify_archive`: walk the archive's hash chains; exit 1 naming the first broken record."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext
from tqdm import tqdm

from invoices.archive.models import ArchiveRecord
from invoices.archive.services import archive_verify


class Command(BaseCommand):
    help = "Check every archive record against its hash and its place in the chain."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mode", choices=("live", "test", "all"), default="all")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (logs, CI).")

    def handle(self, *args: Any, **options: Any) -> None:
        livemode = {"live": True, "test": False, "all": None}[options["mode"]]
        records = ArchiveRecord.objects.all() if livemode is None else ArchiveRecord.objects.filter(livemode=livemode)
        with tqdm(total=records.count(), unit="record", disable=options["no_progress"], file=sys.stderr) as bar:
            problems = archive_verify(livemode=livemode, progress=bar.update)
        if problems:
            for problem in problems:
                self.stderr.write(f"{'live' if problem.livemode else 'test'} chain: {problem.message}")
            first = problems[0]
            raise CommandError(
                (
                    ngettext(
                        "Archive broken: first problem at live record %(sequence)s (%(count)s problem).",
                        "Archive broken: first problem at live record %(sequence)s (%(count)s problems).",
                        len(problems),
                    )
                    if first.livemode
                    else ngettext(
                        "Archive broken: first problem at test record %(sequence)s (%(count)s problem).",
                        "Archive broken: first problem at test record %(sequence)s (%(count)s problems).",
                        len(problems),
                    )
                )
                % {"sequence": first.sequence, "count": len(problems)}
            )
        self.stdout.write(self.style.SUCCESS(f"archive intact: {records.count()} record(s) verified"))
