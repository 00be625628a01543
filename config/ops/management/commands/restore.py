"""`manage.py restore FILE.tar [--force]`: verify every checksum, then restore into an empty database."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.ops.backup import BackupError, backup_restore, backup_verify


class Command(BaseCommand):
    help = "Restore a backup archive into an empty database (refuses a non-empty one unless --force)."

    def add_arguments(self, parser):
        parser.add_argument("archive")
        parser.add_argument("--force", action="store_true", help="Replace a database (and media) that is not empty.")
        parser.add_argument("--verify-only", action="store_true", help="Only check the archive's checksums.")

    def handle(self, *args, archive: str, force: bool, verify_only: bool, **options):
        path = Path(archive)
        if not path.is_file():
            raise CommandError(f"{path} does not exist.")  # untranslated: operators' restore tool
        try:
            if verify_only:
                manifest = backup_verify(archive_path=path)
                self.stdout.write(self.style.SUCCESS(f"Archive intact: {len(manifest['files'])} files verified."))
                return
            manifest = backup_restore(archive_path=path, force=force)
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {len(manifest['files'])} files from the backup of {manifest['created_at']}. "
                "Run `manage.py verify_integrity` next."
            )
        )
