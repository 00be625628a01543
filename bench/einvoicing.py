"""Issue 18 benchmark: e-invoice submissions per second to the PA simulator, and the e-reporting build.

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_bench \
        .venv/bin/python bench/einvoicing.py --submissions 10000 --invoices 100000

**Submissions** (`--submissions N`, 0 to skip): seeds N issued invoices of French B2B
customers with their queued `Transmission` rows, starts the PA simulator as a subprocess on a
free loopback port, and times the submission sweeper (`transmissions_submit_due`): claim,
directory (cached after the first lookup per SIREN), the flow's HTTP POST, the outcome and the
archive record. Only the rendering step is stubbed (`document_einvoice` returns a
pre-rendered CII file of a realistic size): the submission, HTTP and database paths are the
real ones. Target (issue 18): >= 200 documents/s at N = 10,000. `--workers W` runs W sweeper
processes at once (Celery workers in production). The simulator runs on gunicorn (one process,
`--simulator-threads` threads); `--simulator-server werkzeug` measures the development server.

**E-reporting** (`--invoices N`, 0 to skip): seeds its own brand with N issued invoices (and
N/50 credit notes) spread over one ten-day period, written with bulk_create (issued documents
cannot be deleted: use a scratch
database), then times `ereporting_period_build` (the set-based SQL aggregation, the flow XML,
the period row). Target (issue 18): ≤ 5 s at 100,000 invoices.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import random
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from bench_brand import bench_brand  # noqa: E402
from django.db import connection, connections, models  # noqa: E402
from stdnum import luhn  # noqa: E402

from customers.models import Customer  # noqa: E402
from invoices.einvoicing import services as einvoicing_services  # noqa: E402
from invoices.einvoicing.models import PlatformAccount, Transmission  # noqa: E402
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
    brand = bench_brand(slug="bench-er", invoice_prefix="E", credit_note_prefix="EC")
    tag = brand.slug.rsplit("-", 1)[1]
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


# --- submissions to the PA simulator -------------------------------------------------------------

SUBMISSION_SIRENS = 50  # distinct buyers: the directory is asked once per SIREN, then cached


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_simulator(*, server: str = "gunicorn", threads: int = 8) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "invoices.einvoicing.simulator",
            "--port",
            str(port),
            "--server",
            server,
            "--threads",
            str(threads),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(f"{url}/_sim/state", timeout=1)
            return process, url
        except requests.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the PA simulator did not start") from None
            time.sleep(0.1)


def seed_submissions(count: int, *, url: str, batch: int = 5000) -> PlatformAccount:
    """N issued invoices of French B2B customers, each with its queued transmission (as routing
    at finalization writes them), and the brand's platform account at the simulator."""
    brand = bench_brand(slug="bench-ei", invoice_prefix="T", credit_note_prefix="TC")
    tag = brand.slug.rsplit("-", 1)[1]
    account = PlatformAccount.objects.create(
        brand=brand,
        livemode=True,
        name="Simulated PA",
        base_url=url,
        token_url=f"{url}/oauth/token",
        client_id=f"bench-{tag}",
        client_secret="bench-secret",
        default_syntax="cii",
    )
    customers = []
    for index in range(SUBMISSION_SIRENS):
        stem = f"{(int(tag[:6], 16) + index) % 10**8:08d}"
        siren = stem + luhn.calc_check_digit(stem)
        requests.post(
            f"{url}/_sim/directory", json={"siren": siren, "routing_address": f"0225:{siren}"}, timeout=5
        ).raise_for_status()
        customers.append(
            Customer.objects.create(
                brand=brand,
                legal_name=f"Acheteur {index}",
                email=f"t{index}-{tag}@bench.example",
                country="FR",
                is_business=True,
                siren=siren,
                currency="EUR",
                address_line1="1 rue",
                postal_code="75001",
                city="Paris",
            )
        )
    issued = datetime(2026, 10, 1, 10, tzinfo=UTC)
    for first in range(0, count, batch):
        invoices = Invoice.objects.bulk_create(
            Invoice(
                brand=brand,
                customer=customers[index % len(customers)],
                number=f"T{tag}-{index}",
                status="open",
                currency="EUR",
                finalized_at=issued,
                subtotal=10_000,
                total_excluding_tax=10_000,
                tax_total=2_000,
                total=12_000,
                amount_due=12_000,
                amount_remaining=12_000,
                tax_breakdown=[
                    {"category": "S", "rate": "20", "inclusive": False, "taxable_amount": 10_000, "tax_amount": 2_000}
                ],
                issued_snapshot={"buyer": {"country": "FR", "is_business": True}, "issue_date": "2026-10-01"},
            )
            for index in range(first, min(first + batch, count))
        )
        Transmission.objects.bulk_create(
            Transmission(
                account=account,
                customer_id=invoice.customer_id,
                kind=Transmission.Kind.INVOICE,
                invoice=invoice,
                tracking_id=einvoicing_services.tracking_id_for(kind="invoice", document_id=invoice.pk, livemode=True),
                next_attempt_at=issued,
            )
            for invoice in invoices
        )
    return account


# A CII invoice of a typical size (~9 KB): what the stubbed rendering step hands to the PA.
PRE_RENDERED = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n<rsm:CrossIndustryInvoice>"
    + b"<!-- line -->" * 700
    + b"</rsm:CrossIndustryInvoice>"
)


def stub_rendering() -> None:
    """Rendering excluded (issue 18): the flow's content is pre-rendered, everything else is real."""
    from invoices.rendering import einvoice  # deferred: the stub replaces one function of it

    def document_einvoice(*, kind: str, document: Invoice, syntax: str, routing_id: str = "") -> object:
        return einvoice.EInvoiceFile(f"{document.number}-cii.xml", PRE_RENDERED, "application/xml")

    einvoice.document_einvoice = document_einvoice  # type: ignore[assignment]


def sweep(account_id: int, profile: str = "") -> int:
    """One sweeper process: submit due transmissions until none is left."""
    connections.close_all()  # a forked worker opens its own connection
    stub_rendering()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    submitted = 0
    while True:
        done = einvoicing_services.transmissions_submit_due(limit=500)
        submitted += done
        if not done and not Transmission.objects.filter(account_id=account_id, state="queued").exists():
            break
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").dump_stats(profile)
    connections.close_all()
    return submitted


def bench_submissions(
    count: int, *, workers: int, target: float, profile: str, server: str = "gunicorn", threads: int = 8
) -> bool:
    # A scratch database may hold queued rows of an earlier, interrupted run whose simulator is
    # gone: they would be retried against a dead port inside the measurement.
    Transmission.objects.filter(account__brand__slug__startswith="bench-ei-").exclude(
        state__in=("submitted", "failed")
    ).update(state="failed", last_error="left by an earlier benchmark run")
    simulator, url = start_simulator(server=server, threads=threads)
    try:
        started = time.perf_counter()
        account = seed_submissions(count, url=url)
        print(f"seeded {count} queued transmissions in {time.perf_counter() - started:.1f} s", flush=True)
        connections.close_all()
        started = time.perf_counter()
        if workers == 1:
            submitted = sweep(account.pk, profile)
        else:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                submitted = sum(pool.starmap(sweep, [(account.pk, "")] * workers))
        elapsed = time.perf_counter() - started
        sent = requests.get(f"{url}/_sim/state", timeout=30).json()["submissions"]
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    print(f"the sweepers counted {submitted} submissions", flush=True)
    states = dict(
        Transmission.objects.filter(account=account)
        .values_list("state")
        .annotate(n=models.Count("pk"))
        .values_list("state", "n")
    )
    per_second = count / elapsed if elapsed else 0.0
    duplicates = sum(1 for n in sent.values() if n > 1)
    print(
        f"e-invoice submissions: {count} documents, {workers} worker(s), {elapsed:.2f} s -> "
        f"{per_second:.0f} documents/s (target >= {target:.0f}/s); states {states}; "
        f"PA received {len(sent)} tracking ids, {duplicates} more than once",
        flush=True,
    )
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    return states.get("submitted") == count and duplicates == 0 and per_second >= target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000, help="documents submitted (0: skip)")
    parser.add_argument("--workers", type=int, default=1, help="sweeper processes submitting at once")
    parser.add_argument("--submissions-target", type=float, default=200.0, help="documents per second")
    parser.add_argument("--profile", default="", help="cProfile the sweeper (one worker) into this file")
    parser.add_argument(
        "--simulator-server", choices=("gunicorn", "werkzeug"), default="gunicorn", help="what serves the simulator"
    )
    parser.add_argument("--simulator-threads", type=int, default=8, help="the simulator's request threads")
    parser.add_argument("--invoices", type=int, default=100_000, help="e-reporting period size (0: skip)")
    parser.add_argument("--target", type=float, default=5.0, help="seconds the build may take")
    args = parser.parse_args()
    print(f"database: {connection.vendor}", flush=True)
    ok = True
    if args.submissions:
        ok = bench_submissions(
            args.submissions,
            workers=args.workers,
            target=args.submissions_target,
            profile=args.profile,
            server=args.simulator_server,
            threads=args.simulator_threads,
        )
    if not args.invoices:
        return 0 if ok else 1
    print(f"seeding {args.invoices} invoices...", flush=True)
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
        return 0 if ok else 1
    return 0 if ok and elapsed <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
