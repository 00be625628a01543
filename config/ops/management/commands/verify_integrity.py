"""`manage.py verify_integrity`: exit 0 when every invariant holds, 1 with a report otherwise."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import ngettext

from config.ops.integrity import CHECKS, integrity_verify


class Command(BaseCommand):
    help = "Check numbering, immutability, totals, balances, ledger, duplicates and stored PDFs."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="append", choices=sorted(CHECKS), help="Run only this check (repeat).")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, check: list[str] | None, json: bool, **options):
        report = integrity_verify(checks=check)
        failures = sum(len(violations) for violations in report.values())
        if json:
            self.stdout.write(
                _dumps({name: [vars(violation) for violation in violations] for name, violations in report.items()})
            )
        else:
            for name, violations in report.items():
                status = (
                    self.style.SUCCESS("ok") if not violations else self.style.ERROR(f"{len(violations)} violation(s)")
                )
                self.stdout.write(f"{name:<14} {status}")
                for violation in violations[:50]:
                    self.stdout.write(f"    {violation.subject}: {violation.detail}")
                if len(violations) > 50:
                    self.stdout.write(f"    ... and {len(violations) - 50} more")
        if failures:
            raise CommandError(
                ngettext(
                    "Integrity check failed: %(count)s violation.",
                    "Integrity check failed: %(count)s violations.",
                    failures,
                )
                % {"count": failures},
                returncode=1,
            )
        if not json:
            self.stdout.write(self.style.SUCCESS("Integrity verified: no violation."))


def _dumps(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
