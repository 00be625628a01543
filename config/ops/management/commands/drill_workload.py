"""The failover drill's workload (scripts/failover-drill): seed, bill while paying, check.

- `seed --customers N`: a brand, a monthly price and N customers subscribed on DRILL_START
  (each gets its first invoice, sent to be paid by transfer).
- `run --journal FILE`: bills the renewal at DRILL_RENEWAL in small chunks and records
  manual payments of the first invoices between chunks. After every commit it appends
  what was committed to FILE and fsyncs it: the journal is what a client was told
  succeeded. Each document is journaled by its database id and a hash of its content
  (`invoice:<id>:<number>:<sha256>`, `payment:<id>:<sha256>`), never by its number alone:
  after a failover that lost invoices, the resumed run issues new invoices that re-use the
  lost numbers, and a check by number would find them and see nothing wrong.
  Safe to rerun: it resumes what is still due.
- `check --journal FILE`: every journaled invoice and payment exists under its id with
  the same content, none twice, every subscription billed exactly once for the renewal
  period. Exits 1 with what was lost otherwise.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from billing.models import BillingRun, Payment, Price, Product, Subscription
from billing.services.billing_run import billing_run_start
from billing.services.payments import payment_record_manual
from billing.services.subscriptions import ItemSpec, subscription_create
from customers.models import Customer
from invoices.models import Brand, Invoice, TaxRate

DRILL_START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
DRILL_RENEWAL = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
BRAND_NAME = "Drill SAS"


class Journal:
    def __init__(self, path: Path):
        self.path = path
        self.seen: set[str] = set(path.read_text().split()) if path.exists() else set()

    def append(self, entries: list[str]) -> None:
        new = [entry for entry in entries if entry not in self.seen]
        if not new:
            return
        with self.path.open("a") as handle:
            handle.write("".join(f"{entry}\n" for entry in new))
            handle.flush()
            os.fsync(handle.fileno())
        self.seen.update(new)


class Command(BaseCommand):
    help = "Workload of scripts/failover-drill (seed, run, check)."

    def add_arguments(self, parser):
        parser.add_argument("step", choices=["seed", "run", "check"])
        parser.add_argument("--customers", type=int, default=300)
        parser.add_argument("--journal", default="drill-journal.txt")
        parser.add_argument("--chunk-size", type=int, default=10)

    def handle(self, *args, step: str, **options: Any):
        getattr(self, f"_{step}")(**options)

    def _seed(self, *, customers: int, **options: Any) -> None:
        if Brand.objects.filter(name=BRAND_NAME).exists():
            self.stdout.write("Drill data present already.")
            return
        brand = Brand.objects.create(
            slug="drill",
            name=BRAND_NAME,
            legal_name=BRAND_NAME,
            legal_form="SAS",
            country="FR",
            address_line1="1 rue du Test",
            postal_code="75001",
            city="Paris",
            siren="552100554",
            vat_number="FR03552100554",
            invoice_number_format="DRILL-{year}-{seq:06d}",
            credit_note_number_format="DRILLAV-{year}-{seq:06d}",
        )
        TaxRate.objects.get_or_create(
            country="FR", is_standard=True, active=True, defaults={"name": "TVA", "percentage": Decimal("20")}
        )
        product = Product.objects.create(name="Drill plan")
        price = Price.objects.create(
            product=product,
            currency="EUR",
            type=Price.Type.RECURRING,
            scheme=Price.Scheme.PER_UNIT,
            unit_amount=Decimal(2900),
            cycle={"kind": "interval", "unit": "month", "count": 1},
        )
        for index in range(customers):
            customer = Customer.objects.create(
                legal_name=f"Drill customer {index:04d}",
                email=f"drill{index}@example.invalid",
                country="FR",
                address_line1="1 place du Capitole",
                postal_code="31000",
                city="Toulouse",
                brand=brand,
            )
            subscription_create(
                customer=customer,
                items=[ItemSpec(price=price, quantity=1)],
                at=DRILL_START,
                collection_method="send_invoice",
                days_until_due=30,
            )
        self.stdout.write(f"Seeded {customers} customers and subscriptions.")

    def _run(self, *, journal: str, chunk_size: int, **options: Any) -> None:
        log = Journal(Path(journal))
        unpaid = list(
            Invoice.objects.filter(
                billing_reason=Invoice.BillingReason.SUBSCRIPTION_CREATE, status=Invoice.Status.OPEN
            ).order_by("pk")
        )

        def journal_committed(run: BillingRun | None = None) -> None:
            # Called after each chunk's transaction committed: everything read now is durable.
            renewals = Invoice.objects.filter(
                billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE, period_start=DRILL_RENEWAL
            ).order_by("pk")
            log.append([invoice_entry(invoice) for invoice in renewals])
            for _ in range(2):  # pay two first invoices per chunk, as customers' transfers arrive
                if unpaid:
                    invoice = unpaid.pop(0)
                    payment = payment_record_manual(
                        invoice=invoice, amount=invoice.amount_remaining, method="bank_transfer", at=DRILL_RENEWAL
                    )
                    log.append([payment_entry(payment)])
            if run is not None:
                self.stdout.write(f"chunk committed: {run.processed}/{run.total}")
                self.stdout.flush()

        run = billing_run_start(as_of=DRILL_RENEWAL, chunk_size=chunk_size, inline=True, on_progress=journal_committed)
        journal_committed()
        while unpaid:
            journal_committed()
        self.stdout.write(
            f"Run {run.pk} {run.status}: {run.invoices_created} invoices; {Payment.objects.count()} payments in all."
        )

    def _check(self, *, journal: str, **options: Any) -> None:
        entries = Path(journal).read_text().split()
        invoices = dict(_parse(entry) for entry in entries if entry.startswith("invoice:"))
        payments = dict(_parse(entry) for entry in entries if entry.startswith("payment:"))
        stored_invoices = {invoice.pk: invoice_entry(invoice) for invoice in Invoice.objects.filter(pk__in=invoices)}
        stored_payments = {payment.pk: payment_entry(payment) for payment in Payment.objects.filter(pk__in=payments)}
        problems = []
        lost = sorted(pk for pk in invoices if pk not in stored_invoices)
        changed = sorted(pk for pk in invoices if pk in stored_invoices and stored_invoices[pk] != invoices[pk])
        if lost or changed:
            lost_numbers = {invoices[pk].split(":")[2] for pk in lost + changed}
            reused = Invoice.objects.filter(number__in=lost_numbers).count()
            problems.append(
                f"{len(lost) + len(changed)} acknowledged invoice(s) lost "
                f"({len(lost)} missing, {len(changed)} with other content under their id: ids "
                f"{(lost + changed)[:5]}); {reused} of their numbers now carry other documents, "
                "which a check by number would have taken for them"
            )
        lost_payments = sorted(pk for pk in payments if stored_payments.get(pk) != payments[pk])
        if lost_payments:
            problems.append(f"{len(lost_payments)} acknowledged payment(s) lost or changed: ids {lost_payments[:5]}")
        renewals = Invoice.objects.filter(billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE)
        twice = renewals.values("subscription_id", "period_start").annotate(n=Count("pk")).filter(n__gt=1).count()
        if twice:
            problems.append(f"{twice} subscription-period(s) invoiced twice")
        subscriptions = Subscription.objects.count()
        billed = renewals.filter(period_start=DRILL_RENEWAL).count()
        if billed != subscriptions:
            problems.append(f"{billed} renewal invoices for {subscriptions} subscriptions")
        paid_twice = Payment.objects.values("invoice_id").annotate(n=Count("pk")).filter(n__gt=1).count()
        if paid_twice:
            problems.append(f"{paid_twice} invoice(s) paid twice")
        self.stdout.write(
            f"journal: {len(invoices)} invoices and {len(payments)} payments acknowledged before/after the failover "
            f"(checked by id and content hash); database: {billed} renewal invoices for {subscriptions} "
            f"subscriptions, {Payment.objects.count()} payments"
        )
        if problems:
            raise CommandError("Drill check failed: " + "; ".join(problems), returncode=1)
        self.stdout.write(self.style.SUCCESS("Nothing acknowledged was lost, nothing was duplicated."))


def _digest(*parts: Any) -> str:
    return hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()


def invoice_entry(invoice: Any) -> str:
    """`invoice:<id>:<number>:<sha256 of what the customer was told>` (the issued content)."""
    digest = _digest(
        invoice.number,
        invoice.customer_id,
        invoice.subscription_id,
        invoice.period_start.isoformat() if invoice.period_start else "",
        invoice.total,
        invoice.currency,
        invoice.content_hash,
    )
    return f"invoice:{invoice.pk}:{invoice.number}:{digest}"


def payment_entry(payment: Any) -> str:
    digest = _digest(payment.invoice_id, payment.amount, payment.currency, payment.method, payment.reference)
    return f"payment:{payment.pk}:{digest}"


def _parse(entry: str) -> tuple[int, str]:
    return int(entry.split(":")[1]), entry
