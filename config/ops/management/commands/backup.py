"""`manage.py backup [--output FILE.tar]`: database + stored PDFs + SHA-256 manifest."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from config.ops.backup import BackupError, backup_create


class Command(BaseCommand):
    help = "Write a checksummed backup archive (PostgreSQL pg_dump or SQLite online backup, plus MEDIA_ROOT)."

    def add_arguments(self, parser):
        parser.add_argument("--output", help="Archive to write (default: TARIF_BACKUP_DIR/tarif-<time>.tar).")

    def handle(self, *args, output: str | None, **options):
        if output:
            path = Path(output)
        else:
            directory = Path(settings.TARIF_BACKUP_DIR)
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"tarif-{timezone.now():%Y%m%dT%H%M%SZ}.tar"
        with tqdm(desc="backup", unit="file", disable=options["verbosity"] < 1) as bar:
            try:
                result = backup_create(output=path, progress=lambda name: bar.update(1))
            except BackupError as error:
                raise CommandError(str(error)) from error
        self.stdout.write(
            self.style.SUCCESS(f"Backup written: {result.path} ({result.files} files, {result.size} bytes).")
        )
