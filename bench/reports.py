"""Reports benchmark: MRR movements over 24 months for N subscriptions with a year of invoices.

    DATABASE_URL=postgres://... .venv/bin/python bench/reports.py --subscriptions 100000

Seeds (in bulk with COPY on PostgreSQL, not timed) N customers with one subscription
each and the invoices of one year: monthly (85 %), quarterly (5 %) and yearly (10 %)
plans, customers who start during the year, leave, come back after a gap, change plan,
and a tenth with a 10 % discount; one invoice in ten also bills usage. Then times
`reports.selectors.mrr_movements` over the 24 months ending with the year of invoices
(one warm-up, then the median of --repeat runs; the build before them fills the MRR
summary — its time is printed as `summary_build_seconds` — and reads never refresh it,
since issue 14) and checks that each month's
movements explain its change of MRR. Prints `mrr_movements_ms` last. Uses the database
named by DATABASE_URL (default: var/bench.sqlite3), which it empties first: never
point it at real data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from billing_run import reset_database, setup_django  # noqa: E402 - after the path

FIRST_MONTH = date(2025, 12, 1)  # the year of invoices: December 2025 to November 2026
MONTHS = 12
BATCH = 10_000


def _month(offset: int):
    from reports.filters import add_months, month_start

    return month_start(add_months(FIRST_MONTH, offset))


def seed(count: int) -> int:
    import random

    from django.db import connection

    from billing.models import Price, Product, Subscription
    from config.bulk import allocate_ids, copy_insert, copy_supported
    from customers.models import Customer
    from invoices.models import Brand, Invoice, InvoiceLine

    rng = random.Random(20261126)
    brand = Brand.objects.create(
        slug="bench-reports",
        name="Bench",
        legal_name="Bench SAS",
        address_line1="1 rue du Test",
        postal_code="75001",
        city="Paris",
        country="FR",
        is_default=True,
    )
    product = Product.objects.create(name="Bench plans")
    monthly = {"kind": "interval", "unit": "month", "count": 1}
    quarterly = {"kind": "interval", "unit": "month", "count": 3}
    yearly = {"kind": "interval", "unit": "year", "count": 1}
    plans = {
        "starter": Price.objects.create(product=product, currency="EUR", unit_amount=Decimal(2900), cycle=monthly),
        "pro": Price.objects.create(product=product, currency="EUR", unit_amount=Decimal(9900), cycle=monthly),
        "quarterly": Price.objects.create(product=product, currency="EUR", unit_amount=Decimal(25000), cycle=quarterly),
        "yearly": Price.objects.create(product=product, currency="EUR", unit_amount=Decimal(99000), cycle=yearly),
    }
    months = [_month(offset) for offset in range(MONTHS + 1)]
    total_invoices = 0
    countries = ("FR", "FR", "FR", "DE", "BE", "CA")

    def insert(model, objs, *, with_pk):
        if copy_supported():
            copy_insert(model=model, objs=objs, with_pk=with_pk)
        else:
            model.objects.bulk_create(objs, batch_size=2000)

    for offset in range(0, count, BATCH):
        size = min(BATCH, count - offset)
        customers = Customer.objects.bulk_create(
            [
                Customer(
                    legal_name=f"Bench customer {index}",
                    email=f"c{index}@bench.example",
                    country=countries[index % len(countries)],
                    brand=brand,
                    timezone="Europe/Paris",
                )
                for index in range(offset, offset + size)
            ]
        )
        subscriptions = Subscription.objects.bulk_create(
            [
                Subscription(
                    customer=customer,
                    status=Subscription.Status.ACTIVE,
                    currency="EUR",
                    cycle=monthly,
                    billing_cycle_anchor=months[0],
                    current_period_start=months[-2],
                    current_period_end=months[-1],
                )
                for customer in customers
            ]
        )
        invoices: list[Invoice] = []
        lines: list[tuple[int, list[InvoiceLine]]] = []
        for index, subscription in enumerate(subscriptions, start=offset):
            kind = index % 20
            plan = "yearly" if kind < 2 else "quarterly" if kind == 2 else "starter" if index % 3 else "pro"
            step = {"yearly": 12, "quarterly": 3}.get(plan, 1)
            start = 0 if rng.random() < 0.6 else rng.randrange(MONTHS)
            end = rng.randrange(start + 1, MONTHS + 1) if rng.random() < 0.15 else MONTHS
            gap = set(range(start + 2, start + 4)) if step == 1 and rng.random() < 0.03 else set()
            change_at = rng.randrange(start, MONTHS) if step == 1 and rng.random() < 0.2 else None
            percent_off = 10 if index % 10 == 0 else 0
            for month in range(start, end, step):
                if month in gap:
                    continue
                current = plan
                if change_at is not None and month >= change_at:
                    current = "pro" if plan == "starter" else "starter"
                price = plans[current]
                amount = int(price.unit_amount)
                discount = amount * percent_off // 100
                usage = 1200 if index % 10 == 3 else 0
                net = amount - discount + usage
                tax = net // 5
                period_start, period_end = months[month], _month(month + step)
                total_invoices += 1
                invoices.append(
                    Invoice(
                        brand=brand,
                        customer_id=subscription.customer_id,
                        subscription=subscription,
                        number=f"BR-{index}-{month}",
                        status=Invoice.Status.DRAFT,  # issued once its lines are in (see below)
                        billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE,
                        currency="EUR",
                        period_start=period_start,
                        period_end=period_end,
                        subtotal=amount + usage,
                        discount_total=discount,
                        tax_total=tax,
                        total_excluding_tax=net,
                        total=net + tax,
                        amount_due=net + tax,
                        amount_paid=net + tax,
                        finalized_at=period_start,
                        paid_at=period_start,
                    )
                )
                invoice_lines = [
                    InvoiceLine(
                        kind=InvoiceLine.Kind.SUBSCRIPTION,
                        description=current,
                        price=price,
                        amount=amount,
                        discount_amount=discount,
                        tax_rate=Decimal(20),
                        tax_amount=(amount - discount) // 5,
                        period_start=period_start,
                        period_end=period_end,
                    )
                ]
                if usage:
                    invoice_lines.append(
                        InvoiceLine(
                            kind=InvoiceLine.Kind.USAGE,
                            description="usage",
                            amount=usage,
                            tax_rate=Decimal(20),
                            tax_amount=usage // 5,
                            period_start=months[max(month - 1, 0)],
                            period_end=period_start,
                            position=1,
                        )
                    )
                lines.append((len(invoices) - 1, invoice_lines))
        if copy_supported():
            ids = allocate_ids(model=Invoice, count=len(invoices))
            for invoice, pk in zip(invoices, ids, strict=True):
                invoice.pk = pk
            insert(Invoice, invoices, with_pk=True)
        else:
            Invoice.objects.bulk_create(invoices, batch_size=2000)
        flat_lines = []
        for position, invoice_lines in lines:
            for line in invoice_lines:
                line.invoice_id = invoices[position].pk
                flat_lines.append(line)
        insert(InvoiceLine, flat_lines, with_pk=False)
        # Lines go into drafts only (a trigger guards issued invoices); issue the batch.
        with connection.cursor() as cursor:
            cursor.execute("UPDATE invoices_invoice SET status = 'paid' WHERE status = 'draft'")
        print(f"seeded {offset + size}/{count} subscriptions", flush=True)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return total_invoices


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-seed", action="store_true", help="time the queries on the data of the previous run")
    arguments = parser.parse_args()
    if arguments.subscriptions < 1 or arguments.repeat < 1:
        parser.error("--subscriptions and --repeat must be at least 1")
    setup_django(arguments.database_url)

    from django.db import connection

    from invoices.models import Invoice
    from reports.filters import ReportFilters, add_months
    from reports.selectors import mrr_movements

    started = time.perf_counter()
    if arguments.no_seed:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        invoices = Invoice.objects.count()
    else:
        reset_database()
        invoices = seed(arguments.subscriptions)
    print(f"database: {connection.vendor}", flush=True)
    print(f"subscriptions: {arguments.subscriptions}")
    print(f"invoices: {invoices}")
    print(f"seed_seconds: {time.perf_counter() - started:.1f}", flush=True)

    from reports.summary import mrr_summary_refresh

    started = time.perf_counter()
    mrr_summary_refresh(full=True)
    print(f"summary_build_seconds: {time.perf_counter() - started:.1f}", flush=True)
    last = add_months(FIRST_MONTH, MONTHS - 1)
    filters = ReportFilters(start=add_months(last, -23), end=last)
    rows = mrr_movements(filters=filters)  # warm-up
    timings = []
    for _ in range(arguments.repeat):
        started = time.perf_counter()
        rows = mrr_movements(filters=filters)
        timings.append((time.perf_counter() - started) * 1000)
    assert len(rows) == 24, len(rows)
    assert all(row.start_mrr + row.net_new == row.mrr for row in rows), "movements do not explain the MRR"
    final = rows[-1]
    print(f"months: {len(rows)}")
    print(f"final_mrr_cents: {final.mrr}")
    print(f"final_customers: {final.customers}")
    print(
        "movements_in_period_cents: "
        + ", ".join(
            f"{kind}={sum(getattr(row, kind) for row in rows)}"
            for kind in ("new", "expansion", "contraction", "churn", "reactivation")
        )
    )
    print(f"runs_ms: {', '.join(f'{timing:.0f}' for timing in timings)}")
    print(f"mrr_movements_ms: {statistics.median(timings):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
