"""Bounded load test: real HTTP on loopback against gunicorn (3 workers) while a billing run
executes: portal, console and health traffic, no 5xx, no deadlock, no duplicate invoice.

The API (issue #7) joins the traffic mix by adding its URLs to `TRAFFIC` once it exists.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
RENEWAL = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
SUBSCRIPTIONS = 60
CLIENT_THREADS = 6

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


def test_mixed_traffic_during_a_billing_run_has_no_error_no_deadlock_no_duplicate(
    server, staff_with_totp, user, customer_factory, price, tax_rate
):
    from billing.services.billing_run import billing_run_start
    from billing.services.subscriptions import ItemSpec, subscription_create
    from config.ops.integrity import integrity_verify
    from customers.models import CustomerUser
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
    CustomerUser.objects.create(user=user, customer=customers[0])
    staff, device = staff_with_totp
    staff_cookie, portal_cookie = session_cookie(staff, otp_device=device), session_cookie(user)
    traffic = [
        ("/healthz", None),
        ("/portal/", portal_cookie),
        ("/admin/", staff_cookie),
        ("/admin/invoices/invoice/", staff_cookie),
        ("/admin/customers/customer/", staff_cookie),
        ("/admin/operations/", staff_cookie),
    ]
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    stop = threading.Event()

    def hammer(offset: int) -> None:
        index = offset
        while not stop.is_set():
            path, cookie = traffic[index % len(traffic)]
            index += 1
            request = urllib.request.Request(server + path, headers={"Cookie": cookie} if cookie else {})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    statuses[response.status] += 1
            except urllib.error.HTTPError as error:
                statuses[error.code] += 1
                if error.code >= 500:
                    errors.append(f"{path}: {error.code}")
            except OSError as error:
                errors.append(f"{path}: {error}")

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
        deadline = time.monotonic() + 60
        while sum(statuses.values()) < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads), "a client hung: deadlock or stuck worker"
    assert errors == []
    assert during_run > 0, "no request was served while the billing run executed"
    assert statuses[200] >= 60, statuses
    run.refresh_from_db()
    assert (run.status, run.invoices_created) == ("done", SUBSCRIPTIONS)
    renewals = Invoice.objects.filter(billing_reason="subscription_cycle")
    assert renewals.count() == SUBSCRIPTIONS
    assert not any(integrity_verify(checks=["numbering", "duplicates", "totals", "balances"]).values())
    print(f"load: {sum(statuses.values())} requests {dict(statuses)}, {during_run} during the {elapsed:.1f} s run")
