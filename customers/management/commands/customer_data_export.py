"""GDPR access: `manage.py customer_data_export <customer id> --output FILE.zip` (or .json)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext

from config.audit.services import audit_record
from customers.models import Customer
from customers.privacy import customer_data_export, customer_data_export_zip


class Command(BaseCommand):
    help = "Export everything Tarif holds about a customer (JSON, or ZIP with the invoice PDFs)."

    def add_arguments(self, parser):
        parser.add_argument("customer_id", type=int)
        parser.add_argument("--output", required=True, help="FILE.zip (data.json + PDFs) or FILE.json")

    def handle(self, *args, customer_id: int, output: str, **options):
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is None:
            raise CommandError(gettext("No customer with id %(customer_id)s.") % {"customer_id": customer_id})
        path = Path(output)
        if path.suffix == ".json":
            path.write_text(json.dumps(customer_data_export(customer=customer), indent=2, ensure_ascii=False))
        elif path.suffix == ".zip":
            path.write_bytes(customer_data_export_zip(customer=customer))
        else:
            raise CommandError(gettext("The output file must end in .zip or .json."))
        path.chmod(0o600)

        audit_record(
            actor=None,
            action="customer.data_export",
            obj=customer,
            channel="system",
            extra={"command": "customer_data_export", "output": str(path)},
        )
        self.stdout.write(self.style.SUCCESS(f"Wrote {path} ({path.stat().st_size} bytes)."))
