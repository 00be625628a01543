"""GDPR erasure: `manage.py customer_erase <customer id> --yes` anonymizes; invoices are kept."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext

from config.audit.services import audit_record
from config.clock import now as clock_now
from customers.models import Customer
from customers.privacy import ErasureRefused, customer_erase


class Command(BaseCommand):
    help = "Anonymize a customer and its portal logins, keeping invoices and payments as the law requires."

    def add_arguments(self, parser):
        parser.add_argument("customer_id", type=int)
        parser.add_argument("--yes", action="store_true", help="Confirm: this cannot be undone.")

    def handle(self, *args, customer_id: int, yes: bool, **options):
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is None:
            raise CommandError(gettext("No customer with id %(customer_id)s.") % {"customer_id": customer_id})
        if not yes:
            raise CommandError(gettext("Erasure cannot be undone: run again with --yes to confirm."))

        try:
            erased = customer_erase(customer=customer, at=clock_now())
        except ErasureRefused as error:
            raise CommandError(str(error)) from error
        audit_record(
            actor=None, action="customer.erase", obj=erased, channel="system", extra={"command": "customer_erase"}
        )
        self.stdout.write(self.style.SUCCESS(f"Customer {customer_id} anonymized; its invoices are kept."))
