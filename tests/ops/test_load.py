"""Bounded load test: real HTTP on loopback against gunicorn (3 workers) while a billing run
executes: console pages, the portal as a signed-in customer (overview, invoices, the live
proration preview) and the API with a key (invoice list, preview_change, usage batches,
a create replayed with one Idempotency-Key). No 5xx, no deadlock, no duplicate invoice,
no duplicate idempotent write, and `verify_integrity` clean afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
RENEWAL = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
SUBSCRIPTIONS = 150
CLIENT_THREADS = 6
IDEMPOTENCY_KEYS = 4

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(postgres_only):
    port = free_port()
    database = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "TARIF_RENDER_DOCUMENTS": "false",
        "TARIF_API_RATE_LIMIT": "100000/second",  # measure the server, not the throttle
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "3",
            "--timeout",
            "60",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(timeout=30)


def session_cookie(user, *, otp_device=None) -> str:
    client = Client()
    client.force_login(user)
    if otp_device is not None:
        session = client.session
        session["otp_device_id"] = otp_device.persistent_id
        session.save()
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Callable[[], object] | None = None  # built per request (usage event ids must differ)


def send(base: str, call: Call) -> tuple[int, dict[str, str]]:
    data = json.dumps(call.body()).encode() if call.body else None
    headers = {**call.headers, **({"Content-Type": "application/json"} if data is not None else {})}
    request = urllib.request.Request(base + call.path, data=data, headers=headers, method=call.method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_mixed_traffic_during_a_billing_run_has_no_error_no_deadlock_no_duplicate(
    server, staff_with_totp, user, customer_factory, price, price_factory, meter, tax_rate
):
    from billing.services.billing_run import billing_run_start
    from billing.services.subscriptions import ItemSpec, subscription_create
    from config import clock
    from config.api.keys import api_key_create
    from config.ops.integrity import integrity_verify
    from customers.models import Customer, CustomerUser
    from invoices.models import Invoice

    customers = customer_factory.create_batch(SUBSCRIPTIONS)
    for customer in customers:
        subscription_create(
            customer=customer,
            items=[ItemSpec(price=price, quantity=1)],
            at=START,
            collection_method="send_invoice",
            days_until_due=30,
        )
    bigger = price_factory(unit_amount=9900, product=price.product)
    # The portal customer's subscription runs now (previews change the current period); it
    # started after the run's date, so the run leaves it alone.
    portal_customer = customer_factory()
    current = subscription_create(
        customer=portal_customer,
        items=[ItemSpec(price=price, quantity=1)],
        at=clock.now(),
        collection_method="send_invoice",
        days_until_due=30,
    )
    CustomerUser.objects.create(user=user, customer=portal_customer)
    staff, device = staff_with_totp
    _key, raw_key = api_key_create(name="load test", scope="read_write", mode="live", created_by=staff)
    staff_cookie = {"Cookie": session_cookie(staff, otp_device=device)}
    portal_cookie = {"Cookie": session_cookie(user)}
    api_auth = {"Authorization": f"Bearer {raw_key}"}
    usage_ids = count()
    idempotent_posts = count()

    def usage_batch() -> dict:
        at = RENEWAL.isoformat().replace("+00:00", "Z")
        return {
            "events": [
                {
                    "id": f"load-{next(usage_ids)}",
                    "customer": f"cus_{customers[n].pk}",
                    "meter": meter.key,
                    "timestamp": at,
                    "value": 1,
                }
                for n in range(1, 11)
            ]
        }

    def idempotent_customer() -> Call:
        n = next(idempotent_posts) % IDEMPOTENCY_KEYS  # every key is sent again and again
        return Call(
            "POST",
            "/api/v1/customers",
            {**api_auth, "Idempotency-Key": f"load-customer-{n}"},
            lambda: {"legal_name": f"Idempotent {n}", "email": f"idempotent-{n}@load.example", "country": "FR"},
        )

    subscription = current
    preview_change = {"items": [{"price": f"price_{bigger.pk}", "quantity": 2}], "proration_behavior": "none"}
    traffic: list[Call | Callable[[], Call]] = [
        Call("GET", "/healthz"),
        Call("GET", "/portal/", portal_cookie),
        Call("GET", "/portal/invoices/", portal_cookie),
        Call(
            "GET",
            f"/portal/subscriptions/{subscription.pk}/change/preview/?price={bigger.pk}&quantity=2",
            {**portal_cookie, "HX-Request": "true"},
        ),
        Call("GET", "/admin/", staff_cookie),
        Call("GET", "/admin/invoices/invoice/", staff_cookie),
        Call("GET", "/admin/customers/customer/", staff_cookie),
        Call("GET", "/admin/operations/", staff_cookie),
        Call("GET", "/api/v1/invoices?limit=50", api_auth),
        Call("POST", f"/api/v1/subscriptions/sub_{subscription.pk}/preview_change", api_auth, lambda: preview_change),
        Call("POST", "/api/v1/usage_events", api_auth, usage_batch),
        idempotent_customer,
    ]
    statuses: Counter[int] = Counter()
    by_path: Counter[tuple[str, int]] = Counter()
    replayed = Counter()
    errors: list[str] = []
    stop = threading.Event()

    def hammer(offset: int) -> None:
        index = offset
        while not stop.is_set():
            entry = traffic[index % len(traffic)]
            call = entry() if callable(entry) and not isinstance(entry, Call) else entry
            index += 1
            try:
                status, headers = send(server, call)
            except OSError as error:
                errors.append(f"{call.path}: {error}")
                continue
            statuses[status] += 1
            by_path[(call.path.split("?")[0], status)] += 1
            if headers.get("Idempotent-Replayed") == "true":
                replayed[call.path] += 1
            if status >= 500:
                errors.append(f"{call.method} {call.path}: {status}")

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    warm_until = time.monotonic() + 60
    while sum(statuses.values()) < len(traffic) and time.monotonic() < warm_until:
        time.sleep(0.1)  # every worker is serving before the run starts
    before_run = sum(statuses.values())
    started = time.monotonic()
    try:
        run = billing_run_start(as_of=RENEWAL, chunk_size=5, inline=True)
        elapsed = time.monotonic() - started
        during_run = sum(statuses.values()) - before_run
        deadline = time.monotonic() + 30
        while sum(statuses.values()) < 2 * len(traffic) * CLIENT_THREADS and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads), "a client hung: deadlock or stuck worker"
    assert errors == [], errors[:20]
    assert during_run > 0, "no request was served while the billing run executed"
    served = {path for (path, status) in by_path if status < 400}
    for call in traffic:
        path = (call if isinstance(call, Call) else idempotent_customer()).path.split("?")[0]
        assert path in served, f"{path} never answered with success: {sorted(by_path.items())}"
    run.refresh_from_db()
    assert (run.status, run.invoices_created) == ("done", SUBSCRIPTIONS)
    renewals = Invoice.objects.filter(billing_reason="subscription_cycle")
    assert renewals.count() == SUBSCRIPTIONS
    assert renewals.values("subscription").distinct().count() == SUBSCRIPTIONS  # one renewal each
    for n in range(IDEMPOTENCY_KEYS):  # a key replayed many times created its customer once
        assert Customer.objects.filter(email=f"idempotent-{n}@load.example").count() == 1
    assert replayed["/api/v1/customers"] > 0, "no Idempotency-Key was replayed"
    assert not any(integrity_verify(checks=["numbering", "duplicates", "totals", "balances"]).values())
    print(
        f"load: {sum(statuses.values())} requests {dict(statuses)}, {during_run} during the {elapsed:.1f} s run; "
        f"{sorted(by_path.items())}"
    )
