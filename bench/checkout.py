"""Hosted checkout page under load: the page render and the live total, against gunicorn.

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_bench_checkout \
        .venv/bin/python bench/checkout.py --sessions 200 --requests 2000 --clients 4 --workers 2

Creates the database afresh (DROP/CREATE on PostgreSQL, a new file on SQLite: never point it at
real data), migrates, seeds a French seller with FR and BE VAT rates, a monthly plan with a
one-time setup fee, a 20 % promotion code and `--sessions` open checkout sessions (through
`checkout_session_create`), starts gunicorn with `--workers` sync workers and sends `--requests`
requests from `--clients` threads, half of them the page (`GET /checkout/{id}/`) and half the
live total as the buyer types (`GET /checkout/{id}/total/` with a country, a VAT number and the
promotion code, cycling over FR B2B, BE B2B reverse charge and FR B2C). Prints the server time
(the `Server-Timing` header: the milliseconds Django spent, middleware included) p50/p95 of each.
Target (issue 17): p95 server time <= 50 ms for both.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent

from api_load import free_port, percentile, server_timing, start_gunicorn  # noqa: E402
from billing_run import setup_django  # noqa: E402
from entitlements import fresh_database  # noqa: E402

BUYERS = (
    {"customer_type": "business", "country": "FR", "tax_id": "FR40303265045", "legal_name": "Lune Rousse"},
    {"customer_type": "business", "country": "BE", "tax_id": "BE0403019261", "legal_name": "Zenne BV"},
    {"customer_type": "person", "country": "FR", "legal_name": "Camille Martin"},
)


def seed(sessions: int) -> list[str]:
    from django.core.management import call_command

    from billing.checkout.services import checkout_session_create
    from billing.models import Coupon, Price, Product, PromotionCode
    from invoices.models import Brand, TaxRate

    call_command("migrate", verbosity=0)
    brand = Brand.objects.create(
        slug="bench", name="Bench", legal_name="Bench SAS", address_line1="1 rue du Test", postal_code="75001",
        city="Paris", country="FR", siren="552100554", vat_number="FR03552100554", is_default=True,
    )  # fmt: skip
    TaxRate.objects.create(country="FR", name="TVA", percentage=Decimal(20), is_standard=True, active=True)
    TaxRate.objects.create(country="BE", name="BTW", percentage=Decimal(21), is_standard=True, active=True)
    monthly = Price.objects.create(
        product=Product.objects.create(name="Pro"),
        currency="EUR",
        unit_amount=Decimal(4900),
        cycle={"kind": "interval", "unit": "month", "count": 1},
    )
    setup_fee = Price.objects.create(
        product=Product.objects.create(name="Onboarding"), currency="EUR", unit_amount=Decimal(9900), type="one_time"
    )
    PromotionCode.objects.create(
        coupon=Coupon.objects.create(name="Launch", percent_off=Decimal(20), duration="once"), code="LAUNCH"
    )
    return [
        checkout_session_create(
            brand=brand,
            livemode=True,
            mode="subscription",
            line_items=[(monthly, 3), (setup_fee, 1)],
            success_url="https://shop.example/ok?cs={CHECKOUT_SESSION_ID}",
            cancel_url="https://shop.example/pricing",
            allow_promotion_codes=True,
        ).public_id
        for _ in range(sessions)
    ]


def load(base: str, session_ids: list[str], total: int, clients: int) -> dict[str, list[float]]:
    import requests

    timings: dict[str, list[float]] = {"page": [], "total": []}
    lock = threading.Lock()
    per_client = total // clients

    def client(seed: int) -> None:
        chooser = random.Random(seed)
        http = requests.Session()
        mine: dict[str, list[float]] = {"page": [], "total": []}
        for n in range(per_client):
            session_id = chooser.choice(session_ids)
            if n % 2:
                buyer = {**BUYERS[n % 3], "promotion_code": "LAUNCH"}
                response = http.get(
                    f"{base}/checkout/{session_id}/total/", params=buyer, headers={"HX-Request": "true"}
                )
                kind, expected = "total", "summary-total"
            else:
                response = http.get(f"{base}/checkout/{session_id}/")
                kind, expected = "page", "checkout-form"
            if response.status_code != 200 or expected not in response.text:
                raise SystemExit(f"{kind} of {session_id}: {response.status_code} {response.text[:300]}")
            mine[kind].append(server_timing(response.headers["Server-Timing"])["app"])
        with lock:
            for kind, values in mine.items():
                timings[kind].extend(values)

    warm = requests.Session()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda n: warm.get(f"{base}/checkout/{session_ids[n % len(session_ids)]}/"), range(clients * 8)))
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {kind: sorted(values) for kind, values in timings.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    url = (
        arguments.database_url
        or os.environ.get("DATABASE_URL")
        or f"sqlite:///{ROOT / 'var' / 'bench_checkout.sqlite3'}"
    )
    (ROOT / "var").mkdir(exist_ok=True)
    fresh_database(url)
    setup_django(url)
    # The load comes from one address: lift the per-IP limits, the benchmark measures serving.
    for name in ("TARIF_RATELIMIT_CHECKOUT_PAGE", "TARIF_RATELIMIT_CHECKOUT_TOTAL", "TARIF_RATELIMIT_CHECKOUT_SUBMIT"):
        os.environ[name] = "1000000/s"
    from django.db import connection

    session_ids = seed(arguments.sessions)
    vendor = connection.vendor
    connection.close()
    port = free_port()
    server = start_gunicorn(port, arguments.workers)
    try:
        started = time.perf_counter()
        timings = load(f"http://127.0.0.1:{port}", session_ids, arguments.requests, arguments.clients)
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    count = sum(len(values) for values in timings.values())
    print(
        f"database: {vendor}; {arguments.sessions} sessions; gunicorn {arguments.workers} sync workers; "
        f"{arguments.clients} clients; {count} requests in {elapsed:.1f} s"
    )
    for kind in ("page", "total"):
        values = timings[kind]
        print(f"{kind}_server_p50_ms: {statistics.median(values):.2f}")
        print(f"{kind}_server_p95_ms: {percentile(values, 0.95):.2f}")
    worst = max(percentile(values, 0.95) for values in timings.values())
    print(f"target p95 <= 50 ms: {'met' if worst <= 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
