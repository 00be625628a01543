"""`manage.py maintenance on|off|status`: switch read-only maintenance mode on a running fleet."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from config.ops.maintenance import maintenance_active, maintenance_set


class Command(BaseCommand):
    help = "Switch read-only maintenance mode (writes answer 503, reads keep working)."

    def add_arguments(self, parser):
        parser.add_argument("state", choices=["on", "off", "status"])
        parser.add_argument("--reason", default="")

    def handle(self, *args, state: str, reason: str, **options):
        if state != "status":
            try:
                flag = maintenance_set(active=state == "on", reason=reason)
            except ValueError as error:
                raise CommandError(str(error)) from error
            self.stdout.write(f"Flag file: {flag}")
        self.stdout.write(self.style.WARNING("Maintenance: on") if maintenance_active() else "Maintenance: off")
