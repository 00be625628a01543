"""Billing run benchmark: N subscriptions due at the same instant, billed in one run.

    DATABASE_URL=postgres://... .venv/bin/python bench/billing_run.py --subscriptions 100000

Seeds (in bulk, not timed) a catalog mix — flat monthly, per-seat, tiered graduated,
metered with usage events, a 10 % coupon on a fifth of the subscriptions, customers
across FR/DE/BE/CA so domestic VAT, OSS, reverse charge and export all occur — then
runs the billing run and checks that every subscription got exactly one invoice with
gapless numbers. Prints its figures, `invoices_per_second` and `queries_per_invoice`
last. Uses the database named by DATABASE_URL (default: var/bench.sqlite3), which it
empties first: never point it at real data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(database_url: str | None, *, keep_broker: bool = False) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DEBUG"] = "false"
    # PDFs are rendered by their own tasks (bench/render_pdf.py measures them); this
    # benchmark measures issuing invoices.
    os.environ["TARIF_RENDER_DOCUMENTS"] = "false"
    # Likewise collection (charging the new invoices) is payments work, on its own queue
    # and workers; inline it would run eagerly inside the measured run.
    os.environ["TARIF_COLLECT_ON_ISSUE"] = "false"
    if not keep_broker:
        os.environ.pop("CELERY_BROKER_URL", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    elif "DATABASE_URL" not in os.environ:
        (ROOT / "var").mkdir(exist_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{ROOT / 'var' / 'bench.sqlite3'}"
    import django

    django.setup()


def reset_database() -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    tables = [
        "invoices_creditnoteline",
        "invoices_creditnote",
        "invoices_balancetransaction",
        "billing_invoiceitem",
        "invoices_invoiceline",
        "invoices_invoice",
        "invoices_numbersequence",
        "billing_usageevent",
        "billing_usageeventkey",
        "billing_usagerollup",
        "billing_subscriptionchange",
        "billing_scheduledchange",
        "billing_subscriptionitem",
        "billing_subscription",
        "billing_domainevent",
        "billing_billingrun",
        "customers_customeruser",
        "customers_customer",
        "billing_promotioncode",
        "billing_coupon_applies_to",
        "billing_coupon",
        "billing_price",
        "billing_meter",
        "billing_product",
        "invoices_taxrate",
        "invoices_brand",
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Issued documents refuse TRUNCATE unless the session allows it (as the test flush does).
            cursor.execute("SET tarif.allow_truncate = on")
            cursor.execute("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE")
            cursor.execute("RESET tarif.allow_truncate")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")


def seed(count: int, due_at: datetime) -> None:
    import random

    from billing.models import Coupon, Meter, Price, Product, Subscription, SubscriptionItem, UsageEvent
    from billing.services.usage import usage_events_insert
    from customers.models import Customer
    from invoices.models import Brand, TaxRate

    rng = random.Random(20261126)
    brand = Brand.objects.create(
        slug="bench",
        name="Bench",
        legal_name="Bench SAS",
        address_line1="1 rue du Test",
        postal_code="75001",
        city="Paris",
        country="FR",
        siren="552100554",
        vat_number="FR03552100554",
        is_default=True,
    )
    for country, rate in (("FR", "20"), ("DE", "19"), ("BE", "21")):
        TaxRate.objects.create(country=country, percentage=Decimal(rate))
    monthly = {"kind": "interval", "unit": "month", "count": 1}
    product = Product.objects.create(name="Bench Pro")
    meter = Meter.objects.create(key="bench_calls", name="Calls", aggregation=Meter.Aggregation.SUM)
    prices = {
        "flat": Price.objects.create(product=product, currency="EUR", unit_amount=Decimal(2900), cycle=monthly),
        "seat": Price.objects.create(product=product, currency="EUR", unit_amount=Decimal(1500), cycle=monthly),
        "tiered": Price.objects.create(
            product=product,
            currency="EUR",
            scheme=Price.Scheme.TIERED_GRADUATED,
            cycle=monthly,
            tiers=[
                {"up_to": 5, "unit_amount": "1500"},
                {"up_to": 20, "unit_amount": "1200"},
                {"up_to": None, "unit_amount": "900"},
            ],
        ),
        "metered": Price.objects.create(
            product=product,
            currency="EUR",
            unit_amount=Decimal("0.5"),
            cycle=monthly,
            usage_type=Price.UsageType.METERED,
            meter=meter,
        ),
    }
    coupon = Coupon.objects.create(name="Bench 10%", percent_off=Decimal(10), duration=Coupon.Duration.FOREVER)
    profiles = [  # (country, is_business, vat number)
        ("FR", True, ""),
        ("FR", False, ""),
        ("DE", True, "DE136695976"),
        ("DE", False, ""),
        ("BE", True, "BE0403019261"),
        ("CA", True, ""),
    ]
    period_start = due_at - timedelta(days=30)
    batch = 5000
    for offset in range(0, count, batch):
        size = min(batch, count - offset)
        customers = []
        for index in range(offset, offset + size):
            country, is_business, vat = profiles[index % len(profiles)]
            customers.append(
                Customer(
                    legal_name=f"Bench customer {index}",
                    email=f"c{index}@bench.example",
                    country=country,
                    is_business=is_business,
                    tax_id=vat,
                    brand=brand,
                    timezone="Europe/Paris",
                )
            )
        customers = Customer.objects.bulk_create(customers)
        subscriptions = Subscription.objects.bulk_create(
            [
                Subscription(
                    customer=customer,
                    status=Subscription.Status.ACTIVE,
                    currency="EUR",
                    cycle=monthly,
                    billing_cycle_anchor=period_start,
                    current_period_start=period_start,
                    current_period_end=due_at,
                    coupon=coupon if index % 5 == 0 else None,
                )
                for index, customer in enumerate(customers, start=offset)
            ]
        )
        items, events = [], []
        for index, subscription in enumerate(subscriptions, start=offset):
            kind = ("flat", "seat", "tiered", "metered")[index % 4]
            items.append(
                SubscriptionItem(
                    subscription=subscription, price=prices[kind], quantity=1 if kind == "flat" else rng.randint(1, 25)
                )
            )
            if kind == "metered":
                for event in range(3):
                    events.append(
                        UsageEvent(
                            customer_id=subscription.customer_id,
                            meter=meter,
                            external_id=f"{index}-{event}",
                            value=Decimal(rng.randint(100, 5000)),
                            timestamp=period_start + timedelta(days=3 + event * 7),
                        )
                    )
        SubscriptionItem.objects.bulk_create(items)
        usage_events_insert(rows=events)


def _queue_exists(connection, queue: str) -> bool:
    try:
        connection.default_channel.queue_declare(queue=queue, passive=True)
    except Exception:  # kombu raises transport-specific "not found" errors
        return False
    return True


def start_workers(count: int, stats_dir: Path):
    """Celery worker processes on the same database and broker, ready before the run starts.

    Started through bench/billing_run_timing.py, which records each chunk's timing in `stats_dir`.
    """
    import subprocess

    from config.celery import app

    app.control.purge()
    with app.connection_for_write() as connection:  # leftovers of earlier runs on the other queues
        for queue in ("payments", "documents"):
            connection.default_channel.queue_purge(queue) if _queue_exists(connection, queue) else None
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "billing_run_timing.py"),
            "--stats-dir",
            str(stats_dir),
            "--",
            "--concurrency",
            str(count),
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            # The billing queue only: collection of the new invoices (payments) and PDF
            # rendering (documents) have their own queues and workers in production, and
            # their own benchmarks.
            "-Q",
            "celery",
        ],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local"},
    )
    for _ in range(200):
        if app.control.ping(timeout=0.2):
            return process
        time.sleep(0.1)
    process.terminate()
    raise SystemExit("Celery workers did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run the chunks on this many Celery worker processes through CELERY_BROKER_URL (0: inline)",
    )
    parser.add_argument(
        "--profile",
        default=None,
        help="inline only: cProfile the second chunk into this file and print its top functions",
    )
    parser.add_argument(
        "--trace-chunk",
        type=int,
        default=0,
        help="inline only: print every statement of this chunk (1 = the first) with its milliseconds",
    )
    arguments = parser.parse_args()
    if arguments.subscriptions < 1:
        parser.error("--subscriptions must be at least 1")
    if arguments.workers and not os.environ.get("CELERY_BROKER_URL"):
        parser.error("--workers needs CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    setup_django(arguments.database_url, keep_broker=bool(arguments.workers))

    from django.db import connection

    from billing.services.billing_run import billing_run_start
    from invoices.models import Invoice

    due_at = datetime(2026, 12, 1, tzinfo=UTC)
    started = time.perf_counter()
    reset_database()
    seed(arguments.subscriptions, due_at)
    if connection.vendor == "postgresql":
        # Fresh statistics, as autovacuum would have after a real load: plans chosen on
        # the emptied tables' old statistics made runs up to 5x slower and irreproducible.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(f"database: {connection.vendor}", flush=True)
    print(f"subscriptions: {arguments.subscriptions}", flush=True)
    print(f"seed_seconds: {time.perf_counter() - started:.1f}", flush=True)

    queries = 0

    def count_queries(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    import tempfile

    import billing_run_timing as timing

    timing.connect()
    if arguments.trace_chunk:
        timing.connect_trace()
    stats_dir = Path(tempfile.mkdtemp(prefix="billing-run-stats-"))
    inline_timings: list[timing.ChunkTiming] = []
    if arguments.workers:
        from billing.models import BillingRun

        workers = start_workers(arguments.workers, stats_dir)
        try:
            started = time.perf_counter()
            run = billing_run_start(as_of=due_at, inline=False, chunk_size=arguments.chunk_size)
            while run.status == BillingRun.Status.RUNNING:
                time.sleep(0.05)
                run.refresh_from_db()
                if run.failures:
                    raise SystemExit(f"billing run failed: {run.last_error}")
            elapsed = time.perf_counter() - started
        finally:
            workers.terminate()
            workers.wait(30)
        queries = -1  # executed in the workers; see the inline figure
    else:
        import billing.services.billing_run as billing_run_module

        process_chunk = billing_run_module.billing_run_process_chunk

        def timed_chunk(**kwargs):
            timing.RECORDER.start_chunk()
            if arguments.trace_chunk == len(inline_timings) + 1:
                timing.TRACE.start()
            if arguments.profile and len(inline_timings) == 1:
                import cProfile

                profiler = cProfile.Profile()
                result = profiler.runcall(process_chunk, **kwargs)
                profiler.dump_stats(arguments.profile)
            else:
                result = process_chunk(**kwargs)
            timing.TRACE.stop()
            inline_timings.append(timing.RECORDER.end_chunk(result.invoices))
            return result

        billing_run_module.billing_run_process_chunk = timed_chunk
        with connection.execute_wrapper(count_queries), connection.execute_wrapper(timing.TRACE.execute_wrapper):
            server_cpu = timing.backend_cpu_seconds(connection)
            client_cpu = time.process_time()
            started = time.perf_counter()
            run = billing_run_start(as_of=due_at, inline=True, chunk_size=arguments.chunk_size)
            elapsed = time.perf_counter() - started
            client_cpu = time.process_time() - client_cpu
            server_cpu = timing.backend_cpu_seconds(connection) - server_cpu

    invoices = Invoice.objects.filter(billing_reason="subscription_cycle")
    issued = invoices.exclude(status="draft").count()
    numbers = sorted(int(number.rsplit("-", 1)[1]) for number in invoices.values_list("number", flat=True))
    assert issued == arguments.subscriptions == run.invoices_created, (issued, run.invoices_created)
    assert numbers == list(range(1, issued + 1)), "invoice numbers are not gapless"
    print(f"run_status: {run.status}")
    print(f"invoices: {issued}")
    print(f"seconds: {elapsed:.2f}")
    print(f"chunk_size: {arguments.chunk_size}")
    print(f"workers: {arguments.workers or 'inline'}")
    timings = timing.read_stats(stats_dir) if arguments.workers else inline_timings
    for name, value in timing.summarize(timings).items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")
    if not arguments.workers and len(inline_timings) <= 50:
        print("chunk_ms_each: " + " ".join(f"{t.chunk_s * 1000:.0f}" for t in inline_timings))
    if arguments.trace_chunk and not arguments.workers:
        print(timing.TRACE.report())
    if arguments.profile and not arguments.workers:
        import pstats

        pstats.Stats(arguments.profile).sort_stats("cumulative").print_stats(45)
    if not arguments.workers:
        # CPU seconds of this process and of its PostgreSQL backend (same machine, /proc): what
        # the run costs whatever else the machine runs; compare variants on these when it is busy.
        print(f"client_cpu_ms_per_invoice: {1000 * client_cpu / issued:.3f}")
        if server_cpu >= 0:
            print(f"server_cpu_ms_per_invoice: {1000 * server_cpu / issued:.3f}")
    print(f"invoices_per_second: {issued / elapsed:.0f}")
    if queries >= 0:
        print(f"queries_per_invoice: {queries / issued:.3f}")
    else:
        print("queries_per_invoice: (in the workers; run without --workers to count)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
