"""E-reporting half of the issue 18 benchmark: build a period's report over N issued invoices.

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_bench \
        .venv/bin/python bench/einvoicing.py --invoices 100000

Seeds its own brand with N issued invoices (and N/50 credit notes) spread over one ten-day
period, written with bulk_create (issued documents cannot be deleted: use a scratch
database), then times `ereporting_period_build` (the set-based SQL aggregation, the flow XML,
the period row). Target (issue 18): ≤ 5 s at 100,000 invoices. The PA half (submissions
per second to the simulator) is invoices/einvoicing's.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from customers.models import Customer  # noqa: E402
from invoices.ereporting.services import ereporting_period_build  # noqa: E402
from invoices.models import Brand, CreditNote, Invoice  # noqa: E402

START = date(2026, 10, 1)
GROUPS = (("S", "20", 20), ("S", "5.5", 5.5), ("S", "10", 10), ("AE", "0", 0), ("O", "0", 0))
BUYERS = (
    {"country": "FR", "is_business": False, "siren": "", "vat_number": ""},
    {"country": "DE", "is_business": True, "siren": "", "vat_number": "DE136695976"},
    {"country": "FR", "is_business": True, "siren": "303265045", "vat_number": ""},
)
SELLER = {"operation_category": "services", "vat_on_debits": False}


def seed(count: int, *, batch: int = 5000) -> Brand:
    tag = uuid.uuid4().hex[:8]
    brand = Brand.objects.create(
        slug=f"bench-er-{tag}",
        name=f"Bench {tag}",
        legal_name=f"Bench {tag} SAS",
        address_line1="1 rue du Banc",
        postal_code="75001",
        city="Paris",
        country="FR",
        siren="552100554",
        vat_number="FR03552100554",
        invoice_number_format=f"E{tag}-{{year}}-{{seq:06d}}",
        credit_note_number_format=f"EC{tag}-{{year}}-{{seq:06d}}",
    )
    customers = [
        Customer.objects.create(
            brand=brand,
            legal_name=f"Buyer {index}",
            email=f"b{index}-{tag}@bench.example",
            country=buyer["country"],
            is_business=buyer["is_business"],
            currency="EUR",
            address_line1="1 rue",
            postal_code="75001",
            city="Paris",
        )
        for index, buyer in enumerate(BUYERS)
    ]
    rng = random.Random(18)
    invoices: list[Invoice] = []
    for index in range(count):
        kind = rng.randrange(3)
        day = START + timedelta(days=rng.randrange(10))
        category, rate, percent = (GROUPS[rng.randrange(len(GROUPS))], GROUPS[3], GROUPS[0])[kind]
        taxable = rng.randrange(100, 500_000)
        tax = round(taxable * percent / 100)
        invoices.append(
            Invoice(
                brand=brand,
                customer=customers[kind],
                number=f"E{tag}-{index}",
                status="open",
                currency="EUR",
                finalized_at=datetime(day.year, day.month, day.day, 10, tzinfo=UTC),
                subtotal=taxable,
                total_excluding_tax=taxable,
                tax_total=tax,
                total=taxable + tax,
                amount_due=taxable + tax,
                amount_remaining=taxable + tax,
                tax_breakdown=[
                    {
                        "category": category,
                        "rate": rate,
                        "inclusive": False,
                        "taxable_amount": taxable,
                        "tax_amount": tax,
                    }
                ],
                issued_snapshot={"buyer": BUYERS[kind], "seller": SELLER, "issue_date": day.isoformat()},
            )
        )
        if len(invoices) == batch:
            _flush(invoices, brand, tag, rng)
            invoices = []
    if invoices:
        _flush(invoices, brand, tag, rng)
    return brand


def _flush(invoices: list[Invoice], brand: Brand, tag: str, rng: random.Random) -> None:
    created = Invoice.objects.bulk_create(invoices)
    notes = []
    for invoice in created[::50]:
        notes.append(
            CreditNote(
                invoice=invoice,
                brand=brand,
                customer=invoice.customer,
                number=f"EC{tag}-{invoice.number}",
                currency="EUR",
                subtotal=invoice.subtotal,
                tax_total=invoice.tax_total,
                total=invoice.total,
                reduced_amount_due=invoice.total,
                tax_breakdown=invoice.tax_breakdown,
                issued_snapshot=invoice.issued_snapshot,
                issued_at=invoice.finalized_at,
            )
        )
    CreditNote.objects.bulk_create(notes)
    print(f"  seeded {len(created)} invoices", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--target", type=float, default=5.0, help="seconds the build may take")
    args = parser.parse_args()
    print(f"database: {connection.vendor}; seeding {args.invoices} invoices...", flush=True)
    started = time.perf_counter()
    brand = seed(args.invoices)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE invoices_invoice; ANALYZE invoices_creditnote")
    print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    period = ereporting_period_build(brand=brand, livemode=True, kind="transactions", start=START)
    elapsed = time.perf_counter() - started
    rows = len(period.totals["rows"])
    print(
        f"e-reporting build: {args.invoices} invoices -> {rows} rows, flow {len(bytes(period.content))} bytes, "
        f"{elapsed:.2f} s (target <= {args.target:.1f} s)"
    )
    if connection.vendor != "postgresql":
        print("(the target applies to PostgreSQL; other databases take the portable Python path)")
        return 0
    return 0 if elapsed <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
