"""Throughput of `invoices_issue_bulk` (create + finalize) on the configured database.

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_a \
        .venv/bin/python bench/invoices_issue_bulk.py --invoices 10000 --chunk 1000

Each run creates its own brand (own number series) and customers, so it can be
repeated on the same database; issued invoices cannot be deleted (they are frozen),
so use a scratch database. Prints invoices/s and the queries of one chunk last.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from bench_brand import bench_brand  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from customers.models import Customer  # noqa: E402
from invoices.calculations import DiscountInput  # noqa: E402
from invoices.models import BalanceTransaction, TaxRate  # noqa: E402
from invoices.selectors import standard_tax_rates  # noqa: E402
from invoices.services.finalize import invoices_issue_bulk  # noqa: E402
from invoices.types import DraftDiscount, DraftInvoice, DraftLine  # noqa: E402

AT = datetime(2026, 4, 1, tzinfo=UTC)


def setup(count: int) -> list[Customer]:
    brand = bench_brand(slug="bench", invoice_prefix="B", credit_note_prefix="C")
    tag = brand.slug.rsplit("-", 1)[1]
    for country, rate in (("FR", "20"), ("DE", "19")):
        TaxRate.objects.get_or_create(country=country, is_standard=True, active=True, defaults={"percentage": rate})
    customers = Customer.objects.bulk_create(
        [
            Customer(
                legal_name=f"Client {tag} {index}",
                email=f"c{index}@{tag}.example",
                country="DE" if index % 5 == 0 else "FR",
                is_business=index % 3 != 0,
                tax_id="DE136695976" if index % 10 == 0 else "",
                brand=brand,
                address_line1="1 place du Capitole",
                postal_code="31000",
                city="Toulouse",
            )
            for index in range(count)
        ]
    )
    BalanceTransaction.objects.bulk_create(
        [
            BalanceTransaction(customer=customer, currency="EUR", amount=1500, kind="adjustment", created_at=AT)
            for customer in customers[::4]
        ]
    )
    return customers


def draft(customer: Customer, index: int) -> DraftInvoice:
    return DraftInvoice(
        customer_id=customer.pk,
        currency="EUR",
        billing_reason="manual",
        lines=(
            DraftLine(kind="subscription", description="Pro plan, April 2026", amount=2900, quantity=Decimal(1)),
            DraftLine(kind="usage", description="API calls", amount=1234 + index % 100, quantity=Decimal(1234)),
            DraftLine(kind="one_off", description="Setup", amount=500),
        ),
        discounts=(DraftDiscount(discount=DiscountInput(percent_off=Decimal(10)), label="10 %"),) if index % 2 else (),
        collection_method="send_invoice" if index % 7 == 0 else "charge_automatically",
        days_until_due=14 if index % 7 == 0 else None,
    )


def backend_cpu_seconds() -> float:
    """CPU time of this connection's PostgreSQL backend (same machine only), else 0."""
    if connection.vendor != "postgresql":
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=1_000)
    args = parser.parse_args()

    customers = setup(args.invoices)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # fresh statistics, as autovacuum keeps them in production
    rates = standard_tax_rates()
    chunks = [customers[start : start + args.chunk] for start in range(0, len(customers), args.chunk)]
    items = [[(draft(customer, index), customer) for index, customer in enumerate(chunk)] for chunk in chunks]
    elapsed = 0.0
    client_cpu = time.process_time()
    server_cpu = backend_cpu_seconds()
    for chunk_items in items[1:]:
        started = time.perf_counter()
        with transaction.atomic():
            invoices_issue_bulk(items=chunk_items, at=AT, rates=rates)
        elapsed += time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    server_cpu = backend_cpu_seconds() - server_cpu
    # The first chunk is issued with the queries captured (the debug cursor slows it down).
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        invoices_issue_bulk(items=items[0], at=AT, rates=rates)
    timed = args.invoices - len(items[0])
    print(f"database: {connection.vendor}; {args.invoices} invoices, chunks of {args.chunk}, 3 lines")
    copies = "+ COPY of lines, invoices and balance transactions" if connection.vendor == "postgresql" else ""
    print(f"queries in one chunk: {len(captured.captured_queries)} {copies}")
    busy = client_cpu + server_cpu
    per_thousand = 1000 / timed
    print(
        f"CPU per 1,000 invoices: client {client_cpu * per_thousand:.3f} s, database {server_cpu * per_thousand:.3f} s"
    )
    print(f"=> {timed / busy:,.0f} invoices/s of CPU time (what one idle client + database pair sustains)")
    print(f"timed {timed} invoices: {elapsed:.2f} s wall clock, {timed / elapsed:,.0f} invoices/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
