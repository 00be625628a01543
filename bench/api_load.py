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
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
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


def start_gunicorn(port: int, workers: int, cpus: str | None = None, worker_class: str = "sync") -> subprocess.Popen:
    """gunicorn on `port`; `cpus` ("1", "0-1") pins it to those CPUs with taskset (None: anywhere).
    `worker_class` "gthread" runs one thread per worker with keep-alive (sync closes every connection)."""
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
        "--worker-class", worker_class,
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

    def stop(self, requests: int, generator_seconds: float = 0.0) -> dict[str, float]:
        """`generator_seconds`: CPU of a separate load generator (wrk), added to this process's."""
        server, client, database = (
            cpu_seconds(self.server) - self.began[0],
            time.process_time() - self.began[1] + generator_seconds,
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


def default_generator() -> str:
    return "wrk" if shutil.which("wrk") else "python"


# wrk's Lua hooks. `request()` (entitlements: a random customer per request) is added by the caller.
# `response()` counts the non-200 answers and, with `collect_timing`, keeps each response's
# Server-Timing header (a string appended to a table: cheap next to a request). wrk runs for a
# duration, not a number of requests (a thread that stops early still waits out `-d`, and its
# open connections would pin gunicorn's sync workers until their timeout). `done()` (run once,
# in wrk's main Lua state) prints one machine-readable line and writes the collected headers,
# one per line, to `timing_path`.
_WRK_LUA = """
local collect_timing = {collect_timing}
local threads = {{}}
answered, failures, timings = 0, 0, {{}}

function setup(thread)
  thread:set("thread_number", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  wrk.headers["Authorization"] = "Bearer {key}"
  math.randomseed(thread_number * 7919)
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then failures = failures + 1 end
  if collect_timing then timings[#timings + 1] = headers["Server-Timing"] or "" end
end

function done(summary, latency, requests)
  local total_failures = 0
  local out = io.open("{timing_path}", "w")
  for _, thread in ipairs(threads) do
    total_failures = total_failures + thread:get("failures")
    if collect_timing then
      for _, header in ipairs(thread:get("timings")) do out:write(header, "\\n") end
    end
  end
  out:close()
  io.write(string.format(
    "tarif_wrk requests=%d duration_us=%d failures=%d socket_errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\\n",
    summary.requests, summary.duration, total_failures,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def run_wrk(
    url: str,
    key: str,
    seconds: int,
    clients: int,
    *,
    request_lua: str = "",
    collect_timing: bool = False,
    budget: CpuBudget | None = None,
    threads: int = 1,
) -> dict[str, object]:
    """Requests to `url` for `seconds` from `clients` wrk connections (`threads` wrk threads); returns the
    throughput, the latency percentiles (ms), the Server-Timing headers if collected, and the CPU
    per request (`budget`, wrk's own CPU counted as the load generator's, from its rusage)."""
    threads = max(1, min(threads, clients))
    with tempfile.TemporaryDirectory(prefix="tarif-wrk-") as folder:
        script, timing_path = Path(folder) / "bench.lua", Path(folder) / "server-timing.txt"
        script.write_text(
            _WRK_LUA.format(
                collect_timing="true" if collect_timing else "false",
                key=key,
                timing_path=timing_path,
            )
            + request_lua
        )
        command = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds}s", "--latency", "-s", str(script)]
        command.append(url)
        if budget is not None:
            budget.start()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        output = process.stdout.read() if process.stdout else ""
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"wrk failed ({process.returncode}):\n{output}")
        line = next((row for row in output.splitlines() if row.startswith("tarif_wrk ")), None)
        if line is None:
            raise SystemExit(f"wrk printed no summary:\n{output}")
        figures = {name: int(value) for name, value in (field.split("=") for field in line.split()[1:])}
        if figures["failures"]:
            raise SystemExit(f"wrk: {figures['failures']} answers were not 200")
        timings = timing_path.read_text().splitlines() if collect_timing else []
    requests = figures["requests"]
    cpu = budget.stop(requests, generator_seconds=usage.ru_utime + usage.ru_stime) if budget is not None else {}
    return {
        "requests": requests,
        "requests_per_second": requests / (figures["duration_us"] / 1e6),
        "p50_ms": figures["p50_us"] / 1000,
        "p90_ms": figures["p90_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        # connect/read errors: sync workers close each connection, wrk reconnects (a few at the end)
        "socket_errors": figures["socket_errors"],
        "server_timing": timings,
        "cpu": cpu,
    }


def lua_string_list(name: str, values: Sequence[str]) -> str:
    """A Lua global table of strings (paths wrk picks from)."""
    return f"{name} = {{" + ",".join(json.dumps(value) for value in values) + "}\n"


def warm_up(base: str, key: str, clients: int) -> None:
    """Every worker imports and connects once before the clock starts."""
    import requests

    with ThreadPoolExecutor(clients) as pool:
        warm = requests.Session()
        warm.headers["Authorization"] = f"Bearer {key}"
        list(pool.map(lambda _: warm.get(f"{base}/api/v1/invoices", params={"limit": 20}), range(clients * 4)))


def reuse_seed() -> tuple[str, str, str]:
    """A new key on the database a previous run seeded (its key is only stored hashed)."""
    from billing.models import Meter, Subscription
    from config.api.keys import api_key_create

    _key, raw = api_key_create(name="bench", scope="read_write", mode="live", created_by=None)
    subscription = Subscription.objects.filter(items__price__meter__key="api_calls").order_by("pk").first()
    if subscription is None:
        raise SystemExit("--reuse-seed: no seeded metered subscription; run once without it")
    return raw, f"cus_{subscription.customer_id}", Meter.objects.get(key="api_calls").key


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

    warm_up(base, key, clients)
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

    stamp = datetime.now(tz=UTC).replace(microsecond=0).isoformat()
    run = time.time_ns()  # event ids unique per run (--reuse-seed keeps the last run's events)
    bodies = [
        {
            "events": [
                {"id": f"b{run}-{batch}-{n}", "customer": customer, "meter": meter, "timestamp": stamp, "value": 1}
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
    parser.add_argument(
        "--generator",
        choices=("python", "wrk"),
        default=default_generator(),
        help="load generator for the list: wrk (default when installed) or Python threads",
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds of load with wrk (--requests: python)")
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync", help="gunicorn worker class")
    parser.add_argument("--reuse-seed", action="store_true", help="keep the database a previous run seeded")
    arguments = parser.parse_args()
    setup_django(arguments.database_url)
    from django.db import connection

    if arguments.reuse_seed:
        key, customer, meter = reuse_seed()
    else:
        reset_database()
        key, customer, meter = seed(arguments.invoices)
    vendor = connection.vendor
    connection.close()
    port = free_port()
    server = start_gunicorn(port, arguments.workers, worker_class=arguments.worker_class)
    base = f"http://127.0.0.1:{port}"
    try:
        budget = CpuBudget(server.pid, arguments.database_url)
        if arguments.generator == "wrk":
            warm_up(base, key, arguments.clients)
            result = run_wrk(
                f"{base}/api/v1/invoices?limit=20", key, arguments.duration, arguments.clients, budget=budget
            )
            count, rps, cpu = int(result["requests"]), float(result["requests_per_second"]), result["cpu"]
            p50, p90, p99 = (float(result[name]) for name in ("p50_ms", "p90_ms", "p99_ms"))  # type: ignore[arg-type]
            print(f"wrk_socket_errors: {result['socket_errors']}")
        else:
            rps, latencies, cpu = load_invoice_list(base, key, arguments.requests, arguments.clients, budget)
            count, p50 = len(latencies), statistics.median(latencies)
            p90, p99 = percentile(latencies, 0.90), percentile(latencies, 0.99)
        events_per_second, accepted = load_usage(base, key, customer, meter, arguments.batches)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"database: {vendor}; gunicorn {arguments.workers} {arguments.worker_class} workers; "
        f"generator: {arguments.generator}; "
        f"{arguments.clients} clients; {count} requests; {arguments.invoices} invoices; {accepted} usage events"
    )
    print(f"p50_ms: {p50:.1f}")
    print(f"p90_ms: {p90:.1f}")
    print(f"get_invoice_list_rps: {rps:.0f}")
    print(f"p99_ms: {p99:.1f}")
    for name, value in cpu.items():
        print(f"{name}: {value:.2f}" if "ms" in name else f"{name}: {value:.0f}")
    print(f"usage_events_per_second: {events_per_second:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
