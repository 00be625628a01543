"""Integrator API load: real HTTP requests against gunicorn on loopback.

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_api \
        .venv/bin/python bench/api_load.py --requests 3000 --clients 8 --workers 4

Seeds `--invoices` issued invoices, an API key and a metered subscription (emptying the
database first: never point it at real data), starts gunicorn on 127.0.0.1 with
`--workers` sync workers, then:
1. sends `--requests` `GET /api/v1/invoices?limit=20` from `--clients` threads (keep-alive
   sessions) and prints the throughput and latency percentiles;
2. posts `--batches` usage batches of 1,000 events to `POST /api/v1/usage_events` from
   two threads and prints the events ingested per second.
Targets (issue #7): >= 300 requests/s at p99 <= 50 ms; >= 5,000 usage events/s (issue 20:
>= 500 requests/s). It also prints the CPU time each list request costs the server (gunicorn's
processes), the load generator (this process) and PostgreSQL (the backends of the bench's
database), and the requests per second those costs allow on this machine's cores.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent

from billing_run import reset_database, setup_django  # noqa: E402 - Django is set up first


def seed(invoices: int) -> tuple[str, str, str]:
    from django.db import connection, transaction

    from billing.models import Meter, Price, Product
    from billing.services.subscriptions import ItemSpec, subscription_create
    from config.api.keys import api_key_create
    from config.models import ApiKey, IdempotencyRecord
    from customers.models import Customer
    from invoices.models import Brand, TaxRate
    from invoices.selectors import standard_tax_rates
    from invoices.services.finalize import invoices_issue_bulk
    from invoices.types import DraftInvoice, DraftLine

    IdempotencyRecord.objects.all().delete()
    ApiKey.objects.all().delete()
    brand = Brand.objects.create(
        slug="api-bench", name="API Bench", legal_name="API Bench SAS", address_line1="1 rue du Test",
        postal_code="75001", city="Paris", country="FR", siren="552100554", vat_number="FR03552100554",
        is_default=True,
    )  # fmt: skip
    TaxRate.objects.create(country="FR", percentage=Decimal(20))
    customers = Customer.objects.bulk_create(
        Customer(legal_name=f"Client {n}", email=f"c{n}@bench.example", country="FR", brand=brand)
        for n in range(max(invoices // 10, 1))
    )
    at = datetime.now(tz=UTC) - timedelta(days=1)
    drafts = [
        (
            DraftInvoice(
                customer_id=customer.pk,
                currency="EUR",
                billing_reason="manual",
                lines=(
                    DraftLine(kind="subscription", description="Pro plan", amount=2900),
                    DraftLine(kind="one_off", description="Setup", amount=500 + n % 100),
                ),
            ),
            customer,
        )
        for n in range(invoices)
        for customer in [customers[n % len(customers)]]
    ]
    rates = standard_tax_rates()
    for start in range(0, len(drafts), 1000):
        with transaction.atomic():
            invoices_issue_bulk(items=drafts[start : start + 1000], at=at, rates=rates)
    meter = Meter.objects.create(key="api_calls", name="API calls", aggregation=Meter.Aggregation.SUM)
    product = Product.objects.create(name="Metered API")
    calls = Price.objects.create(
        product=product,
        currency="EUR",
        unit_amount=Decimal("0.1"),
        cycle={"kind": "interval", "unit": "month", "count": 1},
        usage_type=Price.UsageType.METERED,
        meter=meter,
    )
    usage_customer = customers[0]
    subscription_create(customer=usage_customer, items=[ItemSpec(calls)], at=at)
    _key, raw = api_key_create(name="bench", scope="read_write", mode="live", created_by=None)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return raw, f"cus_{usage_customer.pk}", meter.key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, workers: int, cpus: str | None = None) -> subprocess.Popen:
    """gunicorn on `port`; `cpus` ("1", "0-1") pins it to those CPUs with taskset (None: anywhere)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DEBUG": "false",
        # The load is one key: lift its rate limit, the benchmark measures serving.
        "TARIF_API_RATE_LIMIT": "1000000/second",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c", str(ROOT / "config" / "gunicorn.conf.py"),
        "config.wsgi",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--worker-class", "sync",
        "--keep-alive", "5",
        "--log-level", "warning",
    ]  # fmt: skip
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("gunicorn did not start")


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used: user + system) of a live process, from /proc (Linux)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks


def process_tree(root: int) -> list[int]:
    """`root` and every process descending from it (gunicorn's master and its workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            parents.setdefault(stat[0], []).append(int(entry.name))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(parents.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    return sum(stat[1] for pid in pids if (stat := _proc_stat(pid)) is not None)


class CpuBudget:
    """CPU time per request of the server (gunicorn's process tree), the load generator (this
    process) and the database (the backends serving the bench's database), measured around a
    load; with the machine's cores it bounds the requests per second the machine can serve."""

    def __init__(self, server_pid: int, database_url: str | None) -> None:
        self.server_pid, self.database_url = server_pid, database_url

    def _database_pids(self) -> list[int]:
        import psycopg

        url = self.database_url or os.environ.get("DATABASE_URL", "")
        if not url.startswith("postgres"):
            return []
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as raw:
            rows = raw.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return [row[0] for row in rows]

    def start(self) -> None:
        self.server = process_tree(self.server_pid)
        self.database = self._database_pids()  # persistent connections: opened by the warm-up
        self.began = (cpu_seconds(self.server), time.process_time(), cpu_seconds(self.database))

    def stop(self, requests: int) -> dict[str, float]:
        server, client, database = (
            cpu_seconds(self.server) - self.began[0],
            time.process_time() - self.began[1],
            cpu_seconds(self.database) - self.began[2],
        )
        per = {name: seconds * 1000 / requests for name, seconds in
               (("server", server), ("client", client), ("database", database))}  # fmt: skip
        total = sum(per.values())
        return {
            "server_cpu_ms_per_request": per["server"],
            "client_cpu_ms_per_request": per["client"],
            "database_cpu_ms_per_request": per["database"],
            "cpu_bound_requests_per_second": (os.cpu_count() or 1) * 1000 / total if total else 0.0,
        }


def server_timing(header: str) -> dict[str, float]:
    """`app;dur=1.80, cpu;dur=1.21` -> {"app": 1.8, "cpu": 1.21} (config.middleware.ServerTimingMiddleware)."""
    metrics = {}
    for metric in header.split(","):
        name, _, duration = metric.strip().partition(";dur=")
        metrics[name] = float(duration)
    return metrics


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(int(len(sorted_values) * fraction), len(sorted_values) - 1)]


def load_invoice_list(
    base: str, key: str, total: int, clients: int, budget: CpuBudget | None = None
) -> tuple[float, list[float], dict[str, float]]:
    import requests

    latencies: list[float] = []
    lock = threading.Lock()
    per_client = total // clients

    def client() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        mine = []
        for _ in range(per_client):
            started = time.perf_counter()
            response = session.get(f"{base}/api/v1/invoices", params={"limit": 20})
            mine.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"GET /api/v1/invoices answered {response.status_code}: {response.text[:200]}")
        with lock:
            latencies.extend(mine)

    # Warm-up: every worker imports and connects once before the clock starts.
    with ThreadPoolExecutor(clients) as pool:
        warm = requests.Session()
        warm.headers["Authorization"] = f"Bearer {key}"
        list(pool.map(lambda _: warm.get(f"{base}/api/v1/invoices", params={"limit": 20}), range(clients * 4)))
    if budget is not None:
        budget.start()
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = budget.stop(len(latencies)) if budget is not None else {}
    return len(latencies) / elapsed, sorted(latencies), cpu


def load_usage(base: str, key: str, customer: str, meter: str, batches: int) -> tuple[float, int]:
    import requests

    now = datetime.now(tz=UTC).replace(microsecond=0)
    bodies = [
        {
            "events": [
                {"id": f"b{batch}-{n}", "customer": customer, "meter": meter, "timestamp": now.isoformat(), "value": 1}
                for n in range(1000)
            ]
        }
        for batch in range(batches)
    ]
    accepted = 0
    lock = threading.Lock()

    def send(body: dict) -> None:
        nonlocal accepted
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        response = session.post(f"{base}/api/v1/usage_events", json=body)
        if response.status_code != 200 or response.json()["errors"]:
            raise SystemExit(f"usage batch refused: {response.status_code} {response.text[:300]}")
        with lock:
            accepted += response.json()["accepted"]

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(send, bodies))
    elapsed = time.perf_counter() - started
    return accepted / elapsed, accepted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    setup_django(arguments.database_url)
    from django.db import connection

    reset_database()
    key, customer, meter = seed(arguments.invoices)
    vendor = connection.vendor
    connection.close()
    port = free_port()
    server = start_gunicorn(port, arguments.workers)
    base = f"http://127.0.0.1:{port}"
    try:
        budget = CpuBudget(server.pid, arguments.database_url)
        rps, latencies, cpu = load_invoice_list(base, key, arguments.requests, arguments.clients, budget)
        events_per_second, accepted = load_usage(base, key, customer, meter, arguments.batches)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"database: {vendor}; gunicorn {arguments.workers} sync workers; {arguments.clients} clients; "
        f"{len(latencies)} requests; {arguments.invoices} invoices; {accepted} usage events"
    )
    print(f"p50_ms: {statistics.median(latencies):.1f}")
    print(f"get_invoice_list_rps: {rps:.0f}")
    print(f"p99_ms: {percentile(latencies, 0.99):.1f}")
    for name, value in cpu.items():
        print(f"{name}: {value:.2f}" if "ms" in name else f"{name}: {value:.0f}")
    print(f"usage_events_per_second: {events_per_second:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
