"""Console and report pages on the large dataset: server time per page (issue 20).

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_dataset \
        .venv/bin/python bench/dataset.py --subscriptions 20000 --reuse
    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_dataset \
        .venv/bin/python bench/console_pages.py --repeat 10

Signs a staff user in through the real password + TOTP steps (Django test client, no
HTTP server: the figures are the application's time, without gunicorn), opens each
console list, the customer hub of a customer with a year of history, and the reports,
--repeat times after one warm-up, and prints the median and p95 per page in ms plus the
number of SQL queries of the last run. Creates its staff user if missing; writes nothing else.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from billing_run import setup_django  # noqa: E402 - after the path

USERNAME = "bench-console"
PASSWORD = "correct horse battery staple"  # a throwaway user of a throwaway database

LISTS = [
    "invoices_invoice",
    "customers_customer",
    "billing_subscription",
    "billing_payment",
    "events_domainevent",
    "audit_auditentry",
    "invoices_creditnote",
    "billing_usageevent",
]


def signed_in_client():
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user, created = get_user_model().objects.get_or_create(
        username=USERNAME, defaults={"is_staff": True, "is_superuser": True}
    )
    if created:
        user.set_password(PASSWORD)
        user.save()
    device, _ = TOTPDevice.objects.get_or_create(user=user, name="bench", defaults={"confirmed": True})
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.post("/admin/login/", {"username": USERNAME, "password": PASSWORD})
    device.refresh_from_db()
    # django-otp refuses a code of a time step already used (replay): a second sign-in within
    # the same 30 s (the portal's client after the console's) takes the next step's code, which
    # the device's tolerance accepts, or waits for the step after that.
    otp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    while device.last_t + 1 > otp.t() + device.tolerance:  # the next unused step is not accepted yet
        time.sleep(1)
        otp.time = time.time()
    otp.time = device.t0 + (max(otp.t(), device.last_t + 1) - device.drift) * device.step
    token = f"{otp.token():0{device.digits}d}"
    verified = client.post("/admin/otp/verify/", {"otp_token": token})
    if verified.status_code != 302:
        raise SystemExit("could not sign in to the console (TOTP step refused)")
    return client


def pages() -> list[tuple[str, str]]:
    from django.urls import reverse

    from customers.models import Customer

    result = [(name, reverse(f"admin:{name}_changelist")) for name in LISTS]
    result.append(("invoices_invoice?status=open", reverse("admin:invoices_invoice_changelist") + "?status=open"))
    customer = Customer.objects.order_by("pk").first()
    if customer is not None:
        result.append(("customer_hub", reverse("admin:customers_customer_change", args=[customer.pk])))
    result.append(("reports_dashboard", reverse("admin:reports_dashboard_changelist")))
    result.append(("report_mrr", reverse("admin:reports_dashboard_report", args=["mrr"])))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    setup_django(arguments.database_url)

    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    # DEBUG stays as deployed (off): queries are counted on one more request, not timed.
    client = signed_in_client()
    print(f"database: {connection.vendor}")
    for name, url in pages():
        response = client.get(url)  # warm-up
        if response.status_code != 200:
            print(f"{name}: status {response.status_code} ({url})")
            continue
        timings = []
        for _ in range(arguments.repeat):
            started = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        p95 = sorted(timings)[max(0, round(0.95 * len(timings)) - 1)]
        print(
            f"{name}: median_ms={statistics.median(timings):.0f} p95_ms={p95:.0f} queries={len(queries)}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
