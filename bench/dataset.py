"""Large dataset generator (issue 20): N customers with a year of billing history, with COPY.

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_dataset \
        .venv/bin/python bench/dataset.py --subscriptions 20000

Empties the database named by DATABASE_URL (never point it at real data; the documented
name is `tarif_dataset`, shared by the benchmarks that read a large dataset, e.g.
bench/console_pages.py), then writes, in batches of --batch subscriptions with PostgreSQL
COPY (config/bulk.py):
- customers across eight countries and four currencies (EUR, USD, GBP, CAD), one
  subscription each on a monthly price of its currency (flat, per seat or yearly), a tenth
  also on a metered price;
- a year of history (December 2025 to November 2026): an issued invoice per period with
  its subscription line (and a usage line for metered customers), paid ones with their
  payment, about 1 % credited by a credit note;
- --usage-per-subscription usage events (default 100) for the biggest meter, spread over
  the year, on every subscription (the "≈ 100 rows per subscription" of the issue).
Prints rows per table and rows/s; a progress bar (tqdm) while it runs. `--reuse` keeps a
dataset of the same size already there (another benchmark's run) and only prints it.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from billing_run import reset_database, setup_django  # noqa: E402 - after the path

BRAND_SLUG = "dataset"
FIRST_MONTH = datetime(2025, 12, 1, tzinfo=UTC)
MONTHS = 12
# (country, currency, is_business, tax rate %)
PROFILES = [
    ("FR", "EUR", True, 20),
    ("FR", "EUR", False, 20),
    ("DE", "EUR", True, 19),
    ("BE", "EUR", True, 21),
    ("ES", "EUR", False, 21),
    ("US", "USD", True, 0),
    ("GB", "GBP", True, 20),
    ("CA", "CAD", True, 5),
]


def _month(offset: int) -> datetime:
    year, month = divmod(FIRST_MONTH.month - 1 + offset, 12)
    return FIRST_MONTH.replace(year=FIRST_MONTH.year + year, month=month + 1)


def existing_size() -> int | None:
    """The number of customers of a dataset already built here (None: none)."""
    from customers.models import Customer
    from invoices.models import Brand

    brand = Brand.objects.filter(slug=BRAND_SLUG).first()
    return None if brand is None else Customer.objects.filter(brand=brand).count()


def _catalog():
    from billing.models import Meter, Price, Product

    monthly = {"kind": "interval", "unit": "month", "count": 1}
    yearly = {"kind": "interval", "unit": "year", "count": 1}
    product = Product.objects.create(name="Dataset plans")
    meter = Meter.objects.create(key="dataset_calls", name="API calls", aggregation=Meter.Aggregation.SUM)
    prices = {}
    for currency in sorted({profile[1] for profile in PROFILES}):
        prices[currency] = {
            "flat": Price.objects.create(product=product, currency=currency, unit_amount=Decimal(2900), cycle=monthly),
            "seat": Price.objects.create(product=product, currency=currency, unit_amount=Decimal(1500), cycle=monthly),
            "yearly": Price.objects.create(
                product=product, currency=currency, unit_amount=Decimal(29000), cycle=yearly
            ),
            "metered": Price.objects.create(
                product=product,
                currency=currency,
                unit_amount=Decimal("0.5"),
                cycle=monthly,
                usage_type=Price.UsageType.METERED,
                meter=meter,
            ),
        }
    return meter, prices


def seed(*, count: int, batch: int, usage_per_subscription: int) -> dict[str, int]:
    import random

    from tqdm import tqdm

    from billing.models import Payment, Subscription, SubscriptionItem, UsageEvent
    from billing.services.usage import usage_events_insert
    from config.bulk import allocate_ids, copy_insert
    from customers.models import Customer
    from invoices.models import Brand, CreditNote, Invoice, InvoiceLine

    rng = random.Random(20261207)
    brand = Brand.objects.create(
        slug=BRAND_SLUG,
        name="Dataset",
        legal_name="Dataset SAS",
        address_line1="1 rue du Test",
        postal_code="75001",
        city="Paris",
        country="FR",
        is_default=True,
    )
    meter, prices = _catalog()
    months = [_month(offset) for offset in range(MONTHS + 1)]
    year_seconds = int((months[-1] - months[0]).total_seconds())
    rows = dict.fromkeys(
        ("customers", "subscriptions", "items", "invoices", "lines", "payments", "credit_notes", "usage_events"), 0
    )
    progress = tqdm(total=count, unit="subscription", file=sys.stderr)
    for offset in range(0, count, batch):
        size = min(batch, count - offset)
        customers = []
        for index in range(offset, offset + size):
            country, currency, is_business, _rate = PROFILES[index % len(PROFILES)]
            customers.append(
                Customer(
                    legal_name=f"Dataset customer {index}",
                    email=f"c{index}@dataset.example",
                    country=country,
                    is_business=is_business,
                    currency=currency,
                    brand=brand,
                    timezone="Europe/Paris",
                )
            )
        # bulk_create, not COPY: the country column's value is an object COPY cannot adapt.
        customers = Customer.objects.bulk_create(customers, batch_size=1000)
        subscription_ids = allocate_ids(model=Subscription, count=size)
        subscriptions, items, invoices, lines, payments, notes, events = [], [], [], [], [], [], []
        invoice_ids = iter(allocate_ids(model=Invoice, count=size * MONTHS))
        for customer, pk, index in zip(customers, subscription_ids, range(offset, offset + size), strict=True):
            _country, currency, _business, rate = PROFILES[index % len(PROFILES)]
            plan = "yearly" if index % 10 == 0 else "seat" if index % 3 == 0 else "flat"
            quantity = 1 + index % 7 if plan == "seat" else 1
            metered = index % 10 == 3
            start = 0 if rng.random() < 0.7 else rng.randrange(MONTHS)
            end = rng.randrange(start + 1, MONTHS + 1) if rng.random() < 0.1 else MONTHS
            subscriptions.append(
                Subscription(
                    pk=pk,
                    customer_id=customer.pk,
                    status=Subscription.Status.ACTIVE if end == MONTHS else Subscription.Status.CANCELED,
                    currency=currency,
                    cycle=prices[currency][plan].cycle,
                    billing_cycle_anchor=months[start],
                    current_period_start=months[-2],
                    current_period_end=months[-1],
                )
            )
            items.append(SubscriptionItem(subscription_id=pk, price=prices[currency][plan], quantity=quantity))
            if metered:
                items.append(SubscriptionItem(subscription_id=pk, price=prices[currency]["metered"], quantity=1))
            step = 12 if plan == "yearly" else 1
            for month in range(start, end, step):
                amount = int(prices[currency][plan].unit_amount) * quantity
                usage = 50 * (1 + index % 40) if metered and month > start else 0
                net = amount + usage
                tax = net * rate // 100
                invoice_pk = next(invoice_ids)
                paid = month < MONTHS - 1 or rng.random() < 0.8
                invoices.append(
                    Invoice(
                        pk=invoice_pk,
                        brand=brand,
                        customer_id=customer.pk,
                        subscription_id=pk,
                        number=f"DS-{invoice_pk:09d}",
                        status=Invoice.Status.DRAFT,  # issued once its lines are in (see below)
                        billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE,
                        currency=currency,
                        period_start=months[month],
                        period_end=_month(month + step),
                        subtotal=net,
                        tax_total=tax,
                        total_excluding_tax=net,
                        total=net + tax,
                        amount_due=net + tax,
                        amount_paid=net + tax if paid else 0,
                        finalized_at=months[month],
                        paid_at=months[month] + timedelta(days=2) if paid else None,
                        due_at=months[month] + timedelta(days=30),
                    )
                )
                lines.append(
                    InvoiceLine(
                        invoice_id=invoice_pk,
                        kind=InvoiceLine.Kind.SUBSCRIPTION,
                        description=plan,
                        price=prices[currency][plan],
                        quantity=quantity,
                        amount=amount,
                        tax_rate=Decimal(rate),
                        tax_amount=amount * rate // 100,
                        period_start=months[month],
                        period_end=_month(month + step),
                    )
                )
                if usage:
                    lines.append(
                        InvoiceLine(
                            invoice_id=invoice_pk,
                            kind=InvoiceLine.Kind.USAGE,
                            description="API calls",
                            price=prices[currency]["metered"],
                            amount=usage,
                            tax_rate=Decimal(rate),
                            tax_amount=usage * rate // 100,
                            period_start=months[month - 1],
                            period_end=months[month],
                            position=1,
                        )
                    )
                if paid:
                    payments.append(
                        Payment(
                            invoice_id=invoice_pk,
                            customer_id=customer.pk,
                            method=Payment.Method.CARD,
                            gateway="sandbox",
                            status=Payment.Status.SUCCEEDED,
                            amount=net + tax,
                            currency=currency,
                            attempt=1,
                            idempotency_key=f"invoice:{invoice_pk}:attempt:1",
                            attempted_at=months[month] + timedelta(days=2),
                            settled_at=months[month] + timedelta(days=2),
                        )
                    )
                if rng.random() < 0.01:
                    notes.append(
                        CreditNote(
                            invoice_id=invoice_pk,
                            brand=brand,
                            customer_id=customer.pk,
                            number=f"DSC-{invoice_pk:09d}",
                            reason=CreditNote.Reason.PRODUCT_UNSATISFACTORY,
                            currency=currency,
                            subtotal=net,
                            tax_total=tax,
                            total=net + tax,
                            credited_to_balance=net + tax,
                            issued_at=months[month] + timedelta(days=5),
                        )
                    )
            first = int((months[start] - months[0]).total_seconds())
            for number in range(usage_per_subscription):
                events.append(
                    UsageEvent(
                        customer_id=customer.pk,
                        meter=meter,
                        external_id=f"ds-{pk}-{number}",
                        value=Decimal(1 + number % 5),
                        timestamp=months[0] + timedelta(seconds=rng.randrange(first, year_seconds)),
                    )
                )
        # Unused invoice ids (customers who joined late) are simply skipped: no gap rule applies here.
        copy_insert(model=Subscription, objs=subscriptions, with_pk=True)
        copy_insert(model=SubscriptionItem, objs=items, with_pk=False)
        copy_insert(model=Invoice, objs=invoices, with_pk=True)
        copy_insert(model=InvoiceLine, objs=lines, with_pk=False)
        _issue_drafts()
        copy_insert(model=Payment, objs=payments, with_pk=False)
        copy_insert(model=CreditNote, objs=notes, with_pk=False)
        # Keys, events (COPY) and rollups, as the ingestion stores them (issue 20).
        usage_events_insert(rows=events)
        for name, objs in (
            ("customers", customers),
            ("subscriptions", subscriptions),
            ("items", items),
            ("invoices", invoices),
            ("lines", lines),
            ("payments", payments),
            ("credit_notes", notes),
            ("usage_events", events),
        ):
            rows[name] += len(objs)
        progress.update(size)
    progress.close()
    return rows


def _issue_drafts() -> None:
    """Lines go into drafts only (a trigger guards issued invoices); issue the batch."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE invoices_invoice SET status = CASE WHEN amount_paid > 0 THEN 'paid' ELSE 'open' END "
            "WHERE status = 'draft'"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=20_000)
    parser.add_argument("--usage-per-subscription", type=int, default=100)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--reuse", action="store_true", help="keep a dataset of this size if one is there")
    arguments = parser.parse_args()
    if arguments.subscriptions < 1 or arguments.batch < 1 or arguments.usage_per_subscription < 0:
        parser.error("--subscriptions and --batch must be at least 1, --usage-per-subscription at least 0")
    setup_django(arguments.database_url)

    from django.db import connection

    if connection.vendor != "postgresql":
        parser.error("the dataset is written with PostgreSQL COPY: set DATABASE_URL to a PostgreSQL database")
    if arguments.reuse:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        if existing_size() == arguments.subscriptions:
            print(f"reusing the dataset of {arguments.subscriptions} subscriptions already in the database")
            return 0
    reset_database()
    with connection.cursor() as cursor:  # the tables reset_database leaves (issue 20's rows)
        cursor.execute("SET tarif.allow_truncate = on")
        cursor.execute("TRUNCATE billing_payment, billing_refund, billing_dunningcase RESTART IDENTITY CASCADE")
        cursor.execute("RESET tarif.allow_truncate")
    started = time.perf_counter()
    rows = seed(
        count=arguments.subscriptions, batch=arguments.batch, usage_per_subscription=arguments.usage_per_subscription
    )
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    total = sum(rows.values())
    for name, value in rows.items():
        print(f"{name}: {value}")
    print(f"rows: {total}")
    print(f"seconds: {seconds:.1f}")
    print(f"rows_per_second: {total / seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
