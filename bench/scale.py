"""Scale benchmark (issue 20): server time of every screen on a large dataset, and the
throughput benchmarks that have their own database.

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_scale_100k \
        .venv/bin/python bench/dataset.py --subscriptions 100000
    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_scale_100k \
        .venv/bin/python bench/scale.py --repeat 20 --skip-billing-run --skip-usage

On the dataset built by bench/dataset.py (it builds a small one first with `--build N`),
with the Django test client (no HTTP server: the application's own time) it times
`--repeat` requests of each page after one warm-up and prints the median and p95 in ms and
the page's SQL queries:
- console lists (invoices, open invoices, customers, subscriptions, payments, events,
  audit log), the customer hub of a customer with a year of history, the console's index
  and the reports dashboard, signed in as a staff user through the real password + TOTP steps;
- every report of the registry (reports/registry.py) on its page, the MRR report over 24 months;
- the portal's overview, invoices, one invoice and the subscription change page, as the
  staff user viewing the portal as that customer;
- the API lists (invoices, customers, subscriptions, events) and `preview_change` of an
  upgrade, with a live read-write API key.
Then, unless skipped, it runs bench/billing_run.py and bench/usage_ingest.py (when that
exists) on `--throughput-database-url`: they EMPTY their database, so they never run on the
dataset's. Creates its staff user and API key if missing (only rows it adds to the
dataset's database). Target (issue 20): p95 ≤ 200 ms per page, ≤ 2 s per report, 1 s for
MRR movements at 1,000,000 subscriptions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from billing_run import setup_django  # noqa: E402 - after the path

PAGE_TARGET_MS = 200
REPORT_TARGET_MS = 2000
MRR_TARGET_MS = 1000
CONSOLE_LISTS = [
    "invoices_invoice",
    "customers_customer",
    "billing_subscription",
    "billing_payment",
    "events_domainevent",
    "audit_auditentry",
]
API_LISTS = ["invoices", "customers", "subscriptions", "events"]


def _sample_subscription():
    """An active monthly subscription with a year of history, in its current period if one is
    (a change applies within the current period: `preview_change` answers 422 `outside_period`
    for a subscription whose period ended and awaits the month's billing run — the whole
    dataset on the days after it was built, until `--bill-month` renews some)."""
    from billing.models import Subscription
    from config import clock

    now = clock.system_now()
    active = Subscription.objects.filter(
        status=Subscription.Status.ACTIVE, cycle__unit="month", invoices__isnull=False
    ).select_related("customer")
    in_period = active.filter(current_period_start__lte=now, current_period_end__gt=now).order_by("pk").first()
    return in_period or active.order_by("pk").first()


def _in_current_period(subscription) -> bool:
    from config import clock

    now = clock.system_now()
    return subscription.current_period_start <= now < subscription.current_period_end


def console_pages(subscription) -> list[tuple[str, str, int]]:
    """(name, url, target ms) of the console's pages and reports."""
    from django.urls import reverse

    from reports.registry import REPORTS

    pages = [(name, reverse(f"admin:{name}_changelist"), PAGE_TARGET_MS) for name in CONSOLE_LISTS]
    pages.append(
        ("invoices_invoice?status=open", reverse("admin:invoices_invoice_changelist") + "?status=open", PAGE_TARGET_MS)
    )
    if subscription is not None:
        hub = reverse("admin:customers_customer_change", args=[subscription.customer_id])
        pages.append(("customer_hub", hub, PAGE_TARGET_MS))
    pages.append(("console_index", reverse("admin:index"), PAGE_TARGET_MS))
    pages.append(("reports_dashboard", reverse("admin:reports_dashboard_changelist"), PAGE_TARGET_MS))
    for report in REPORTS.values():
        url = reverse("admin:reports_dashboard_report", args=[report.name])
        if report.needs_customer:
            if subscription is None:
                continue
            url += f"?customer={subscription.customer_id}"
        pages.append((f"report:{report.name}", url, REPORT_TARGET_MS))
    # MRR movements over 24 months: the figure (the dataset's year and the one before).
    mrr = reverse("admin:reports_dashboard_report", args=["mrr"]) + "?start=2024-12-01&end=2026-11-30"
    pages.append(("report:mrr 24 months", mrr, MRR_TARGET_MS))
    return pages


def portal_pages(subscription) -> list[tuple[str, str, int]]:
    from django.urls import reverse

    if subscription is None:
        return []
    invoice = subscription.invoices.order_by("-pk").first()
    return [
        ("portal_home", reverse("portal:home"), PAGE_TARGET_MS),
        ("portal_invoices", reverse("portal:invoices"), PAGE_TARGET_MS),
        ("portal_invoice", reverse("portal:invoice", args=[invoice.pk]), PAGE_TARGET_MS),
        ("portal_subscription_change", reverse("portal:change", args=[subscription.pk]), PAGE_TARGET_MS),
    ]


def api_client():
    from django.test import Client

    from config.api.keys import api_key_create

    _key, raw = api_key_create(name="bench-scale", scope="read_write", mode="live", created_by=None)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_ACCEPT_LANGUAGE="en")


def upgrade_body(subscription) -> dict:
    """A change of the sample subscription to a dearer price of its currency (what a preview shows)."""
    from billing.models import Price

    current = subscription.items.select_related("price").order_by("pk").first().price
    dearer = (
        Price.objects.filter(currency=subscription.currency, usage_type=current.usage_type, cycle=current.cycle)
        .exclude(pk=current.pk)
        .order_by("-unit_amount")
        .first()
        or current
    )
    return {"items": [{"price": f"price_{dearer.pk}", "quantity": 2}], "proration_behavior": "create_prorations"}


def measure(name: str, request, *, repeat: int, target_ms: int) -> bool:
    """Times `request()` (a response) `repeat` times after a warm-up; prints; True if within target."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    try:
        response = request()
    except Exception as error:  # noqa: BLE001 - a page that fails is reported, the others still measured
        print(f"{name}: ERROR {type(error).__name__}: {error}", flush=True)
        return False
    if response.status_code != 200:
        print(f"{name}: status {response.status_code} {response.content[:300]!r}", flush=True)
        return False
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        request()
        timings.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:  # one more request, not timed: its queries
        request()
    timings.sort()
    p95 = timings[min(len(timings) - 1, max(0, round(0.95 * len(timings)) - 1))]
    verdict = "ok" if p95 <= target_ms else f"ABOVE {target_ms}"
    print(
        f"{name}: median_ms={statistics.median(timings):.0f} p95_ms={p95:.0f} "
        f"queries={len(queries)} target_ms={target_ms} {verdict}",
        flush=True,
    )
    return p95 <= target_ms


def run_throughput(script: str, arguments: list[str], database_url: str) -> int:
    path = BENCH_DIR / script
    if not path.exists():
        print(f"== {script}: not written yet, skipped", flush=True)
        return 0
    print(f"== {script} {' '.join(arguments)} (database {database_url.rsplit('/', 1)[-1]})", flush=True)
    environment = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, str(path), *arguments], cwd=BENCH_DIR.parent, env=environment).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--build", type=int, default=0, help="first build a dataset of N subscriptions (0: use it)")
    parser.add_argument("--usage-per-subscription", type=int, default=10, help="with --build")
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--skip-reports", action="store_true", help="console lists, portal and API only")
    parser.add_argument("--skip-billing-run", action="store_true")
    parser.add_argument("--skip-usage", action="store_true")
    parser.add_argument("--billing-run-subscriptions", type=int, default=10_000)
    parser.add_argument(
        "--only", action="append", default=[], help="time only the pages whose name contains this (repeatable)"
    )
    parser.add_argument(
        "--refresh-summaries",
        action="store_true",
        help="first bring the reports' summaries up to date (the only writes to the dataset; timed)",
    )
    parser.add_argument(
        "--bill-month",
        type=int,
        default=0,
        metavar="N",
        help="on a COPY of the dataset (writes invoices): first bill N due subscriptions (a billing run "
        "changing the month), then time MRR over 24 months before and after the summary's refresh",
    )
    parser.add_argument("--writable-copy", action="store_true", help="confirms DATABASE_URL is a copy (--bill-month)")
    parser.add_argument(
        "--throughput-database-url",
        default=None,
        help="database that bench/billing_run.py and bench/usage_ingest.py empty (never the dataset's)",
    )
    arguments = parser.parse_args()
    if arguments.repeat < 1 or arguments.build < 0:
        parser.error("--repeat must be at least 1 and --build at least 0")
    if arguments.database_url:
        os.environ["DATABASE_URL"] = arguments.database_url
    if (
        arguments.throughput_database_url
        and arguments.throughput_database_url == os.environ.get("DATABASE_URL")
        and not arguments.skip_pages
    ):
        parser.error("--throughput-database-url must not be the dataset's database (the benchmarks empty it)")
    failures = 0
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("scale.py reads a dataset built on PostgreSQL: set DATABASE_URL to one; skipped")
        return 0
    if arguments.build:
        built = subprocess.run(
            [
                sys.executable,
                str(BENCH_DIR / "dataset.py"),
                "--subscriptions",
                str(arguments.build),
                "--usage-per-subscription",
                str(arguments.usage_per_subscription),
                "--reuse",
            ],
            cwd=BENCH_DIR.parent,
        )
        if built.returncode:
            return built.returncode
    if arguments.bill_month and not arguments.writable_copy:
        parser.error("--bill-month writes invoices: run it on a copy of the dataset and add --writable-copy")
    if arguments.bill_month:
        failures += after_billing_run_main(arguments.bill_month, repeat=arguments.repeat)
    elif arguments.refresh_summaries:
        refresh_summaries()
    if not arguments.skip_pages:
        failures += pages_main(arguments.repeat, reports=not arguments.skip_reports, only=arguments.only)
    throughput_url = arguments.throughput_database_url
    for skipped, script, script_arguments in (
        (arguments.skip_billing_run, "billing_run.py", ["--subscriptions", str(arguments.billing_run_subscriptions)]),
        (arguments.skip_usage, "usage_ingest.py", []),
    ):
        if skipped:
            continue
        if not throughput_url:
            print(f"== {script}: skipped (give --throughput-database-url, a database it may empty)", flush=True)
            continue
        failures += run_throughput(script, script_arguments, throughput_url) != 0
    print(f"pages_or_runs_failed_or_above_target: {failures}")
    return 0


def refresh_summaries() -> None:
    """The beat tasks' work, timed: the MRR summary and the reports' month summaries."""
    setup_django(None)
    from reports.summaries import report_summaries_refresh
    from reports.summary import mrr_summary_refresh

    started = time.perf_counter()
    changed = mrr_summary_refresh()
    print(f"mrr_summary_refresh: {time.perf_counter() - started:.1f} s (customers recomputed: {changed})", flush=True)
    for name, months in report_summaries_refresh(
        progress=lambda name, done, total: print(f"  {name}: {done}/{total} months", flush=True)
    ).items():
        print(f"report_summary_refresh {name}: months recomputed {months}", flush=True)
    print(f"summaries_refresh_seconds: {time.perf_counter() - started:.1f}", flush=True)


def print_summaries() -> None:
    try:
        from reports.selectors import SUMMARY_NAMES, mrr_summary_status, summary_status
    except ImportError:  # a checkout from before the month summaries (a "before" run)
        return

    status = mrr_summary_status()
    print(f"summary mrr: built={status.built} as_of={status.refreshed_at}")
    for name in SUMMARY_NAMES:
        state = summary_status(name=name)
        print(f"summary {name}: built={state.built} as_of={state.refreshed_at}")


def after_billing_run_main(count: int, *, repeat: int) -> int:
    """Issue 20 item 7: MRR over 24 months "measured after a billing run has just changed the
    month" — the state finance staff open it in on the 1st. Bills `count` due subscriptions of
    the dataset (a billing run, inline), then times the report: right after the run (the summary
    as the last refresh left it: reads never refresh), the refresh the beat task then does, and
    the report after it. 1 if a read is above the 1 s target."""
    setup_django(None)
    from console_pages import signed_in_client
    from django.conf import settings
    from django.urls import reverse

    from billing.models import Subscription
    from billing.services.billing_run import billing_run_start
    from config import clock
    from reports.summary import mrr_summary_refresh

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    now = clock.system_now()
    due = list(
        Subscription.objects.filter(status=Subscription.Status.ACTIVE, current_period_end__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:count]
    )
    if not due:
        print("bill-month: no subscription is due (already billed?); timing the report as it is", flush=True)
    else:
        started = time.perf_counter()
        run = billing_run_start(as_of=now, inline=True, subscription_ids=due)
        seconds = time.perf_counter() - started
        print(
            f"billing run: {len(due)} due subscriptions, status {run.status}, {seconds:.1f} s "
            f"({len(due) / seconds:.0f} subscriptions/s)",
            flush=True,
        )
    url = reverse("admin:reports_dashboard_report", args=["mrr"]) + "?start=2024-12-01&end=2026-11-30"
    this_month = reverse("admin:reports_dashboard_report", args=["mrr"]) + "?start=2024-12-01&end=2026-12-31"
    console = signed_in_client()
    above = 0
    for name, address in (("mrr 24 months", url), ("mrr 25 months, to this month", this_month)):
        above += not measure(
            f"after the run, before the refresh: {name}",
            lambda a=address: console.get(a),
            repeat=repeat,
            target_ms=MRR_TARGET_MS,
        )
    started = time.perf_counter()
    changed = mrr_summary_refresh()
    print(
        f"mrr_summary_refresh after the run: {time.perf_counter() - started:.1f} s (customers recomputed: "
        f"{'all (rebuilt)' if changed < 0 else changed})",
        flush=True,
    )
    for name, address in (("mrr 24 months", url), ("mrr 25 months, to this month", this_month)):
        above += not measure(
            f"after the refresh: {name}", lambda a=address: console.get(a), repeat=repeat, target_ms=MRR_TARGET_MS
        )
    return above


def pages_main(repeat: int, *, reports: bool = True, only: list[str] | None = None) -> int:
    """Times every page; the number of pages above their target (or failing)."""
    setup_django(None)
    from console_pages import signed_in_client
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("the scale benchmark reads a dataset built by bench/dataset.py on PostgreSQL")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    # DEBUG stays as deployed (off): with it on, templates render in debug mode and every query
    # is logged, which is not the server time users get. `measure` counts queries apart.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_key": "1000000/second"},  # the benchmark measures serving
    }
    subscription = _sample_subscription()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM billing_subscription")
        subscriptions = cursor.fetchone()[0]
    print(f"dataset: {subscriptions} subscriptions; sample subscription {getattr(subscription, 'pk', None)}")
    print_summaries()

    def wanted(name: str) -> bool:
        return not only or any(part in name for part in only)

    above = 0
    console = signed_in_client()
    for name, url, target in console_pages(subscription):
        if (not reports and name.startswith("report:")) or not wanted(name):
            continue
        above += not measure(name, lambda url=url: console.get(url), repeat=repeat, target_ms=target)
    if subscription is not None:
        portal = signed_in_client()
        viewed = portal.post(f"/portal/view-as/{subscription.customer_id}/")
        if viewed.status_code != 302:
            print(f"portal: could not view the portal as customer {subscription.customer_id}")
            above += 1
        else:
            for name, url, target in portal_pages(subscription):
                if not wanted(name):
                    continue
                above += not measure(name, lambda url=url: portal.get(url), repeat=repeat, target_ms=target)
    api = api_client()
    for name in API_LISTS:
        if not wanted(f"api:{name}"):
            continue
        url = f"/api/v1/{name}?limit=20"
        above += not measure(f"api:{name}", lambda url=url: api.get(url), repeat=repeat, target_ms=PAGE_TARGET_MS)
    if subscription is not None and wanted("api:preview_change") and not _in_current_period(subscription):
        print(
            "api:preview_change: skipped — no active subscription is in its current period (they await the "
            "month's billing run; the API rightly answers 422 outside_period): run --bill-month N on a copy",
            flush=True,
        )
    elif subscription is not None and wanted("api:preview_change"):
        body = upgrade_body(subscription)
        url = f"/api/v1/subscriptions/sub_{subscription.pk}/preview_change"
        above += not measure(
            "api:preview_change",
            lambda: api.post(url, body, content_type="application/json"),
            repeat=repeat,
            target_ms=PAGE_TARGET_MS,
        )
    return above


if __name__ == "__main__":
    sys.exit(main())
