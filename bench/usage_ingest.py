"""Usage ingestion through the batch API (issue 20): events per second.

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_usage_bench \
        .venv/bin/python bench/usage_ingest.py --batches 50 --batch-size 1000 --customers 1000 [--http 1,2,4]

Empties the database first (never point it at real data), seeds `--customers` customers,
a sum meter with a `region` dimension and a live read/write API key, then posts `--batches`
batches of `--batch-size` events to `POST /api/v1/usage_events` through Django's test
client (the whole request path: authentication, DRF parsing and validation, the service's
checks, dedup keys, COPY, rollups, domain events, in one process), and prints:

- `api_events_per_second`: events accepted per second of wall time, one client;
- `service_events_per_second`: the same through `usage_events_record` directly (no HTTP/DRF);
- `api_cpu_ms_per_batch`, `service_cpu_ms_per_batch`: this process's CPU time per batch
  (the Python work, not the database's): steadier than wall time on a loaded machine;
- `duplicate_batch_ms`: replaying a stored batch (every event a duplicate);
- the rollup rows written and the events stored, as a check.

With `--http 1,2,4` it also starts gunicorn with 1, 2 then 4 sync workers on loopback (as
bench/api_load.py does) and posts fresh batches from `--clients` threads (bodies encoded
before the clock starts), printing `http_events_per_second_<n>_workers`: the scaling of
ingestion with web workers (on a 2-core machine shared with the database and the clients,
expect it to flatten at 2).

Target (issue 20): >= 50,000 events/s through the batch API. The machine is shared: compare
figures taken in the same minute; the lead measures quiet.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from billing_run import reset_database, setup_django  # noqa: E402 - Django is set up first


def seed(customers: int) -> tuple[str, list[int], str]:
    from billing.models import Meter
    from config.api.keys import api_key_create
    from config.models import ApiKey, IdempotencyRecord
    from customers.models import Customer
    from invoices.models import Brand

    IdempotencyRecord.objects.all().delete()
    ApiKey.objects.all().delete()
    brand = Brand.objects.create(
        slug="usage-bench", name="Usage Bench", legal_name="Usage Bench SAS", address_line1="1 rue du Test",
        postal_code="75001", city="Paris", country="FR", siren="552100554", vat_number="FR03552100554",
        is_default=True,
    )  # fmt: skip
    rows = Customer.objects.bulk_create(
        Customer(legal_name=f"Client {n}", email=f"c{n}@bench.example", country="FR", brand=brand)
        for n in range(customers)
    )
    meter = Meter.objects.create(
        key="api_calls", name="API calls", aggregation=Meter.Aggregation.SUM, dimensions=["region"]
    )
    _key, raw = api_key_create(name="usage-bench", scope="read_write", mode="live", created_by=None)
    return raw, [customer.pk for customer in rows], meter.key


def batch_body(batch: int, size: int, customer_ids: list[int], meter: str, now: datetime, prefix: str = "b") -> dict:
    # Spread over the last 20 days and 3 regions: many rollup buckets, as real traffic makes.
    return {
        "events": [
            {
                "id": f"{prefix}{batch}-{n}",
                "customer": f"cus_{customer_ids[(batch * size + n) % len(customer_ids)]}",
                "meter": meter,
                "timestamp": (now - timedelta(minutes=(batch * size + n) % (20 * 24 * 60))).isoformat(),
                "value": 1 + n % 7,
                "properties": {"region": ("eu", "us", "ap")[n % 3]},
            }
            for n in range(size)
        ]
    }


def load_http(
    key: str, customer_ids: list[int], meter: str, *, workers: int, clients: int, batches: int, size: int
) -> float:
    """Events accepted per second by gunicorn with `workers` workers, from `clients` threads."""
    import json
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from api_load import free_port, start_gunicorn

    now = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(minutes=1)
    bodies = [
        json.dumps(batch_body(batch, size, customer_ids, meter, now, prefix=f"w{workers}-")).encode()
        for batch in range(batches)
    ]
    port = free_port()
    server = start_gunicorn(port, workers)

    def send(body: bytes) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/usage_events",
            data=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        if answer["errors"]:
            raise SystemExit(f"usage batch refused: {answer['errors'][:3]}")
        return answer["accepted"]

    try:
        warm = json.dumps(batch_body(-1, 10, customer_ids, meter, now, prefix=f"warm{workers}-")).encode()
        with ThreadPoolExecutor(workers * 2) as pool:  # every worker imports and connects first
            list(pool.map(send, [warm] * (workers * 2)))
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            accepted = sum(pool.map(send, bodies))
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    return accepted / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--http", default="", help="gunicorn worker counts to measure, e.g. 1,2,4 (none by default)")
    parser.add_argument("--clients", type=int, default=4, help="HTTP client threads (with --http)")
    arguments = parser.parse_args()
    # The load is one key: lift its rate limit, the benchmark measures ingestion.
    os.environ["TARIF_API_RATE_LIMIT"] = "1000000/second"
    setup_django(arguments.database_url)
    from django.db import connection
    from django.test import Client

    from billing.models import UsageEvent, UsageRollup
    from billing.services.usage import UsageEventInput, usage_events_record

    reset_database()
    key, customer_ids, meter = seed(arguments.customers)
    now = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(minutes=1)
    bodies = [batch_body(b, arguments.batch_size, customer_ids, meter, now) for b in range(arguments.batches)]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="localhost")

    def post(body: dict) -> dict:
        response = client.post("/api/v1/usage_events", body, content_type="application/json")
        if response.status_code != 200 or response.json()["errors"]:
            raise SystemExit(f"usage batch refused: {response.status_code} {response.content[:300]!r}")
        return response.json()

    post(batch_body(-1, 10, customer_ids, meter, now))  # warm-up: imports, caches, the key
    accepted = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for body in bodies:
        accepted += post(body)["accepted"]
    api_seconds = time.perf_counter() - started
    # This process's CPU (request path + service, not the database's): steadier than wall time
    # on a loaded machine, and what the per-event Python work costs.
    api_cpu_ms = (time.process_time() - cpu_started) * 1000 / len(bodies)

    replay_started = time.perf_counter()
    replay = post(bodies[0])
    duplicate_ms = (time.perf_counter() - replay_started) * 1000
    assert replay["accepted"] == 0 and replay["duplicates"] == arguments.batch_size, replay

    inputs = [
        [
            UsageEventInput(
                customer_id=int(event["customer"].removeprefix("cus_")),
                meter_key=meter,
                external_id=f"s-{event['id']}",
                timestamp=datetime.fromisoformat(event["timestamp"]),
                value=event["value"],
                properties=event["properties"],
            )
            for event in body["events"]
        ]
        for body in bodies
    ]
    started, cpu_started = time.perf_counter(), time.process_time()
    service_accepted = sum(usage_events_record(events=batch).accepted for batch in inputs)
    service_seconds = time.perf_counter() - started
    service_cpu_ms = (time.process_time() - cpu_started) * 1000 / len(inputs)

    print(
        f"database: {connection.vendor}; {arguments.batches} batches of {arguments.batch_size} events; "
        f"{arguments.customers} customers; test client, one process"
    )
    print(f"api_events_per_second: {accepted / api_seconds:.0f}")
    print(f"service_events_per_second: {service_accepted / service_seconds:.0f}")
    print(f"api_cpu_ms_per_batch: {api_cpu_ms:.0f} (this process)")
    print(f"service_cpu_ms_per_batch: {service_cpu_ms:.0f} (this process)")
    print(f"duplicate_batch_ms: {duplicate_ms:.1f}")
    print(f"events_stored: {UsageEvent.objects.count()}; rollup_rows: {UsageRollup.objects.count()}")
    connection.close()
    for workers in [int(count) for count in arguments.http.split(",") if count.strip()]:
        rate = load_http(
            key,
            customer_ids,
            meter,
            workers=workers,
            clients=arguments.clients,
            batches=arguments.batches,
            size=arguments.batch_size,
        )
        print(f"http_events_per_second_{workers}_workers: {rate:.0f} ({arguments.clients} clients)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
