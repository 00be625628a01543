"""`manage.py usage_partitions --ahead 3`: create the coming months' usage partitions (issue 20).

`--drop-expired` also applies the raw-event retention (TARIF_USAGE_RAW_RETENTION_DAYS).
The beat tasks `billing.usage_partitions_ensure` and `billing.usage_raw_retention` run
the same services daily.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from billing.services.usage_partitions import (
    usage_partitions_drop_expired,
    usage_partitions_ensure,
    usage_partitions_list,
)


class Command(BaseCommand):
    help = "Create the usage-event partitions of the coming months (PostgreSQL); optionally apply the retention."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ahead", type=int, default=3, help="Months to create after the current one.")
        parser.add_argument("--drop-expired", action="store_true", help="Drop raw partitions past the retention.")

    def handle(self, *args: object, **options: object) -> None:
        ahead = options["ahead"]
        assert isinstance(ahead, int)
        created = usage_partitions_ensure(ahead=ahead)
        for name in created:
            self.stdout.write(f"created {name}")
        if options["drop_expired"]:
            result = usage_partitions_drop_expired()
            for name in result.dropped:
                self.stdout.write(f"dropped {name}")
            for name, reason in result.kept:
                self.stdout.write(f"kept {name}: {reason}")
        partitions = usage_partitions_list()
        if not partitions:
            self.stdout.write("usage events are not partitioned on this database")
        for partition in partitions:
            bounds = "DEFAULT" if partition.is_default else f"[{partition.start or 'MINVALUE'}, {partition.end})"
            self.stdout.write(f"{partition.name} {bounds}")
