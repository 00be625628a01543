"""`manage.py export_archive DIR`: every record's bytes and a manifest (JSON lines) with its hashes.

The manifest lets an auditor check the chain without Tarif: each line holds the fields the
record hash covers; `sha256sum` checks the files; the HMAC needs the integrity key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from invoices.archive.models import ArchiveRecord


class Command(BaseCommand):
    help = "Export the archive (content files + manifest.jsonl) to a directory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory")
        parser.add_argument("--mode", choices=("live", "test", "all"), default="all")

    def handle(self, *args: Any, **options: Any) -> None:
        target = Path(options["directory"])
        target.mkdir(parents=True, exist_ok=True)
        records = ArchiveRecord.objects.order_by("livemode", "sequence")
        if options["mode"] != "all":
            records = records.filter(livemode=options["mode"] == "live")
        count = 0
        with (target / "manifest.jsonl").open("w", encoding="utf-8") as manifest:
            for record in records.iterator(chunk_size=500):
                mode = "live" if record.livemode else "test"
                name = f"{mode}-{record.sequence:010d}.bin"
                (target / name).write_bytes(bytes(record.content))
                manifest.write(
                    json.dumps(
                        {
                            "file": name,
                            "mode": mode,
                            "sequence": record.sequence,
                            "kind": record.kind,
                            "reference": record.reference,
                            "brand": record.brand_id,
                            "content_sha256": record.content_sha256,
                            "metadata": record.metadata,
                            "archived_at": record.archived_at.isoformat(),
                            "retain_until": record.retain_until.isoformat(),
                            "previous_hash": record.previous_hash,
                            "record_hash": record.record_hash,
                        },
                        sort_keys=True,
                    )
                    + "\n"
                )
                count += 1
        self.stdout.write(self.style.SUCCESS(f"{count} record(s) exported to {target}"))
