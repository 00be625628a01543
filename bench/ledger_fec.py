"""FEC export of a fiscal year with N journal entries (issue 19 benchmark: 1,000,000 entries in
at most 60 s, memory bounded because the file is streamed).

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_scratch \
        .venv/bin/python bench/ledger_fec.py --entries 1000000

Seeds a new brand's fiscal year 2025 with COPY (half sales of three lines, half payments of
two: 2.5 lines per entry), then runs the export in a fresh process (so its peak memory is the
export's, not the seeding's) and prints seconds, lines per second and peak memory
(resource.getrusage's maximum resident set, and tracemalloc's peak of Python allocations with
--tracemalloc, which slows the run). Entries are append-only (database triggers refuse
DELETE): run it on a scratch database. Seeding runs as the owner role with
session_replication_role=replica so the per-entry balance triggers don't dominate the seed
time; the rows seeded are balanced anyway and the export only reads.
Options: --check also runs fec_check on the file (it reads the whole file into memory).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from bench_brand import bench_brand  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from customers.models import Customer  # noqa: E402
from invoices.ledger.exports import fec_export  # noqa: E402
from invoices.ledger.fec import fec_check  # noqa: E402
from invoices.ledger.models import Account, JournalSequence  # noqa: E402
from invoices.ledger.services import chart_load  # noqa: E402
from invoices.models import Brand  # noqa: E402

YEAR = 2025
ENTRY_COLUMNS = (
    "id, brand_id, livemode, journal, fiscal_year, number, date, label, source_type, source_id, movement, "
    "document_number, document_date, customer_id, currency, functional_currency, rate, reversal_of_id, created_at, "
    "validated_at"
)
LINE_COLUMNS = (
    "entry_id, position, account_id, debit, credit, functional_debit, functional_credit, customer_id, label, "
    "tax_rate, tax_category"
)


def seed(entries: int) -> int:
    brand = bench_brand(slug="bench-fec", invoice_prefix="F", credit_note_prefix="A")
    tag = brand.slug.rsplit("-", 1)[1]
    chart_load(brand=brand)
    accounts = {a.code: a.pk for a in Account.objects.filter(brand=brand)}
    receivable, revenue, vat, bank = accounts["411"], accounts["706"], accounts["445712"], accounts["512"]
    customers = Customer.objects.bulk_create(
        [
            Customer(
                brand=brand,
                legal_name=f"Client {n} SARL",
                email=f"c{n}-{tag}@bench.example",
                country="FR",
                currency="EUR",
                address_line1="1 rue",
                postal_code="75001",
                city="Paris",
            )  # fmt: skip
            for n in range(1000)
        ]
    )
    customer_ids = [c.pk for c in customers]
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM ledger_journalentry")
        first_id = cursor.fetchone()[0] + 1
        numbers = {"VT": 0, "BQ": 0}
        raw = cursor.cursor  # psycopg's cursor, for COPY
        with raw.copy(f"COPY ledger_journalentry ({ENTRY_COLUMNS}) FROM STDIN") as copy:
            for n in range(entries):
                journal = "VT" if n % 2 == 0 else "BQ"
                numbers[journal] += 1
                day = date(YEAR, 1, 1) + timedelta(days=n * 365 // entries)
                customer = customer_ids[n % len(customer_ids)]
                copy.write_row((
                    first_id + n, brand.pk, True, journal, YEAR, numbers[journal], day,
                    f"Invoice B-{n}" if journal == "VT" else f"Payment B-{n}",
                    "invoice" if journal == "VT" else "payment", first_id + n,
                    "invoice_finalized" if journal == "VT" else "payment_succeeded",
                    f"B-{YEAR}-{n:07d}", day, customer, "EUR", "EUR", 1,
                    None, datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
                    datetime(day.year, day.month, day.day, 12, tzinfo=UTC),  # validated (numbered) that day
                ))  # fmt: skip
        with raw.copy(f"COPY ledger_journalline ({LINE_COLUMNS}) FROM STDIN") as copy:
            for n in range(entries):
                entry = first_id + n
                customer = customer_ids[n % len(customer_ids)]
                net = 1000 + (n % 9000)
                if n % 2 == 0:
                    tax = net // 5
                    copy.write_row((entry, 0, receivable, net + tax, 0, net + tax, 0, customer, "Invoice", None, ""))
                    copy.write_row((entry, 1, revenue, 0, net, 0, net, customer, "Subscription", 20, "S"))
                    copy.write_row((entry, 2, vat, 0, tax, 0, tax, customer, "VAT 20%", 20, ""))
                else:
                    amount = net
                    copy.write_row((entry, 0, bank, amount, 0, amount, 0, customer, "Payment", None, ""))
                    copy.write_row((entry, 1, receivable, 0, amount, 0, amount, customer, "Payment", None, ""))
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('ledger_journalentry', 'id'), %s)", [first_id + entries - 1]
        )
        JournalSequence.objects.bulk_create(
            [
                JournalSequence(brand=brand, livemode=True, journal=journal, fiscal_year=YEAR, last_number=last)
                for journal, last in numbers.items()
            ]
        )
    cursor_time = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ledger_journalentry; ANALYZE ledger_journalline")
    print(f"seeded {entries:,} entries in {cursor_time:.1f} s (brand {brand.pk})", flush=True)
    return brand.pk


def export(brand_id: int, *, check: bool, trace: bool) -> None:
    brand = Brand.objects.get(pk=brand_id)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    size = lines = 0
    with tempfile.TemporaryFile() as out:
        name, chunks = fec_export(brand=brand, livemode=True, fiscal_year=YEAR)
        for chunk in chunks:
            out.write(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
        seconds = time.perf_counter() - started
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        traced = f", tracemalloc peak {tracemalloc.get_traced_memory()[1] / 1e6:.1f} MB" if trace else ""
        print(
            f"FEC {name}: {lines - 1:,} lines, {size / 1e6:.0f} MB in {seconds:.1f} s "
            f"({(lines - 1) / seconds:,.0f} lines/s); peak RSS {peak_rss_mb:.0f} MB{traced}",
            flush=True,
        )
        if check:
            out.seek(0)
            started = time.perf_counter()
            issues = fec_check(out.read(), fiscal_year_start=date(YEAR, 1, 1), fiscal_year_end=date(YEAR, 12, 31))
            print(f"fec_check: {len(issues)} issue(s) in {time.perf_counter() - started:.1f} s", flush=True)
            for issue in issues[:5]:
                print("  ", issue, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--brand", type=int, help="export only (a brand seeded before)")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    if args.brand:
        export(args.brand, check=args.check, trace=args.tracemalloc)
        return 0
    brand_id = seed(args.entries)
    # The export in its own process: its peak memory is then the export's alone.
    command = [sys.executable, __file__, "--brand", str(brand_id)]
    command += ["--check"] * args.check + ["--tracemalloc"] * args.tracemalloc
    return subprocess.call(command)


if __name__ == "__main__":
    raise SystemExit(main())
