"""Issue 20 item 7: the usage report at a million customers.

The month rollups (billing.UsageMonthRollup) stay equal to the daily rollups under ingestion
(also two batches racing on PostgreSQL), the report's read (whole UTC months from the month
rollups, edge days from the daily rollups, partial days from raw events) equals the raw-event
reference on random data for every filter, both modes and two reporting time zones; the page
shows per meter totals and the top customers, the files and the API every customer; the
integrity check and the equality both see a month rollup gone wrong (negative controls).
"""

from __future__ import annotations

import csv
import io
import random
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from billing.models import Meter, UsageEvent, UsageMonthRollup, UsageRollup
from billing.selectors import usage_month_rollup_differences
from billing.services.usage import usage_events_insert
from config.api.keys import api_key_create
from config.ops.integrity import integrity_verify
from reports import selectors
from reports.filters import ReportFilters
from reports.registry import REPORTS

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row locks are PostgreSQL's")


def _events(rng: random.Random, customers, meters, count: int, *, prefix: str = "e") -> list[UsageEvent]:
    """Events over 14 months, a third of them within hours of a month's start (UTC and the
    reporting zone's), so every period has partial first and last days."""
    rows = []
    for index in range(count):
        if rng.random() < 0.35:
            month = rng.randint(1, 12)
            moment = datetime(2026, month, 1, tzinfo=UTC) + timedelta(minutes=rng.randint(-600, 600))
        else:
            moment = datetime(2025, 11, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 420 * 86400))
        rows.append(
            UsageEvent(
                customer=rng.choice(customers),
                meter=rng.choice(meters),
                external_id=f"{prefix}-{index}",
                timestamp=moment,
                value=Decimal(rng.randint(0, 100_000)) / 100,
                properties={"region": rng.choice(("eu", "us"))},
            )
        )
    return rows


@pytest.fixture
def usage_world(customer_factory, meter_factory, price_factory, brand_factory):
    rng = random.Random(20)
    brands = [brand_factory(), brand_factory()]
    meters = [meter_factory(name="API calls"), meter_factory(name="Storage", aggregation=Meter.Aggregation.MAX)]
    plan = price_factory(usage_type="metered", meter=meters[1], unit_amount=Decimal(2))
    customers = [
        customer_factory(
            legal_name=f"Customer {index:02d}",
            brand=rng.choice(brands),
            country=rng.choice(("FR", "DE", "BE")),
            currency=rng.choice(("EUR", "USD")),
            livemode=index % 5 != 0,
        )
        for index in range(12)
    ]
    return rng, brands, meters, plan, customers


def _periods(brands, plan, customers):
    return [
        ReportFilters(start=date(2026, 1, 1), end=date(2026, 6, 1)),
        ReportFilters(start=date(2026, 3, 1), end=date(2026, 3, 1)),  # one month: no whole UTC month in Paris
        ReportFilters(start=date(2025, 11, 1), end=date(2026, 12, 1)),
        ReportFilters(start=date(2026, 2, 1), end=date(2026, 9, 1), brand=brands[0].pk),
        ReportFilters(start=date(2026, 2, 1), end=date(2026, 9, 1), currency="USD"),
        ReportFilters(start=date(2026, 2, 1), end=date(2026, 9, 1), country="DE"),
        ReportFilters(start=date(2026, 2, 1), end=date(2026, 9, 1), plan=plan.pk),
        ReportFilters(start=date(2026, 1, 1), end=date(2026, 12, 1), customer=customers[1].pk),
        ReportFilters(start=date(2026, 1, 1), end=date(2026, 6, 1), livemode=False),
        ReportFilters(start=date(2026, 4, 1), end=date(2026, 5, 1), livemode=False, currency="EUR"),
    ]


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "UTC"])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_month_rollup_read_equals_the_raw_events(seed, zone, usage_world, settings):
    settings.TARIF_REPORTS_TIMEZONE = zone
    _rng, brands, meters, plan, customers = usage_world
    rng = random.Random(seed)
    # Two batches, so month rows are added to as well as created.
    usage_events_insert(rows=_events(rng, customers, meters, 300, prefix="a"))
    usage_events_insert(rows=_events(rng, customers, meters, 300, prefix="b"))
    assert UsageMonthRollup.objects.count() < UsageRollup.objects.count()

    for filters in _periods(brands, plan, customers):
        live = selectors.usage_by_meter_live(filters=filters)
        assert selectors.usage_by_meter(filters=filters) == live, filters
        assert list(selectors.usage_by_meter_stream(filters=filters, chunk=7)) == live, filters
        # The API's keyset pages, joined, are every row once, in (meter id, customer id) order.
        pages, after = [], None
        while page := selectors.usage_by_meter_page(filters=filters, after=after, limit=5):
            pages += page
            after = (page[-1].meter_id, page[-1].customer_id)
        assert pages == sorted(live, key=lambda row: (row.meter_id, row.customer_id)), filters
        # The page's digest: per meter totals and the top customers, from the same rows.
        overview = selectors.usage_overview(filters=filters, top=3)
        by_meter: dict[int, list] = {}
        for row in live:
            by_meter.setdefault(row.meter_id, []).append(row)
        assert [(m.meter_id, m.customers, m.events, m.total, m.peak) for m in overview.meters] == [
            (meter_id, len(rows), sum(r.events for r in rows), sum(r.total for r in rows), max(r.peak for r in rows))
            for meter_id, rows in sorted(by_meter.items(), key=lambda item: (item[1][0].meter, item[0]))
        ], filters
        assert overview.top == [row for rows in by_meter.values() for row in rows[:3]], filters
        assert overview.customers == len({row.customer_id for row in live}), filters
    assert usage_month_rollup_differences() == []


def test_a_month_rollup_gone_wrong_is_seen(usage_world):
    """Negative controls: a month rollup that no longer equals its days is reported by
    `verify_integrity` and makes the report differ from the raw events."""
    _rng, _brands, meters, _plan, customers = usage_world
    usage_events_insert(rows=_events(random.Random(5), customers, meters, 200))
    filters = ReportFilters(start=date(2026, 1, 1), end=date(2026, 12, 1))
    assert selectors.usage_by_meter(filters=filters) == selectors.usage_by_meter_live(filters=filters)
    assert integrity_verify(checks=["usage_months"]) == {"usage_months": []}

    wrong = UsageMonthRollup.objects.filter(month=date(2026, 6, 1), customer__livemode=True).first()
    UsageMonthRollup.objects.filter(pk=wrong.pk).update(value_sum=wrong.value_sum + 1)

    violations = integrity_verify(checks=["usage_months"])["usage_months"]
    assert len(violations) == 1 and f"customer {wrong.customer_id} 2026-06" in str(violations[0])
    assert selectors.usage_by_meter(filters=filters) != selectors.usage_by_meter_live(filters=filters)

    UsageMonthRollup.objects.filter(pk=wrong.pk).delete()
    assert "month rollup events None" in str(integrity_verify(checks=["usage_months"])["usage_months"][0])


def test_the_migration_backfill_gives_what_ingestion_wrote(usage_world):
    import importlib

    _rng, _brands, meters, _plan, customers = usage_world
    usage_events_insert(rows=_events(random.Random(7), customers, meters, 200))
    written = sorted(UsageMonthRollup.objects.values_list("meter_id", "month", "customer_id", "event_count"))
    sums = sorted(UsageMonthRollup.objects.values_list("value_sum", "value_max"))
    UsageMonthRollup.objects.all().delete()
    migration = importlib.import_module("billing.migrations.0028_use23_usage_month_rollups")
    from django.apps import apps

    with connection.schema_editor(atomic=False) as editor:
        migration.fill_month_rollups(apps, editor)

    assert sorted(UsageMonthRollup.objects.values_list("meter_id", "month", "customer_id", "event_count")) == written
    assert sorted(UsageMonthRollup.objects.values_list("value_sum", "value_max")) == sums


@postgresql_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_batches_racing_on_the_same_months_add_up(customer_factory, meter_factory):
    customers = [customer_factory() for _ in range(3)]
    meter = meter_factory()
    barrier = threading.Barrier(2)
    errors: list[Exception] = []

    def run(prefix: str) -> None:
        try:
            rows = [
                UsageEvent(
                    customer=customers[n % 3],
                    meter=meter,
                    external_id=f"{prefix}{n}",
                    timestamp=datetime(2026, 3, 1 + n % 28, tzinfo=UTC),
                    value=Decimal(n % 7),
                )
                for n in range(60)
            ]
            barrier.wait()
            usage_events_insert(rows=rows)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(prefix,)) for prefix in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    months = UsageMonthRollup.objects.filter(meter=meter)
    assert months.count() == 3
    assert sum(months.values_list("event_count", flat=True)) == 120
    assert sum(months.values_list("value_sum", flat=True)) == 2 * sum(Decimal(n % 7) for n in range(60))
    assert usage_month_rollup_differences() == []


# -- The page, the files and the API ---------------------------------------------------------------


def _many_customers(customer_factory, meter_factory, count: int):
    meter = meter_factory(name="API calls")
    customers = [customer_factory(legal_name=f"Usage customer {index:02d}") for index in range(count)]
    usage_events_insert(
        rows=[
            UsageEvent(
                customer=customer,
                meter=meter,
                external_id=f"p-{index}",
                timestamp=datetime(2026, 2, 10, tzinfo=UTC),
                value=Decimal(index + 1),
            )
            for index, customer in enumerate(customers)
        ]
    )
    return meter, customers


def test_the_page_shows_meter_totals_and_the_top_customers_and_says_the_files_have_all(
    console_as, customer_factory, meter_factory, monkeypatch
):
    monkeypatch.setattr(selectors, "USAGE_TOP_CUSTOMERS", 3)
    monkeypatch.setattr("reports.selectors.operations.USAGE_TOP_CUSTOMERS", 3)
    _many_customers(customer_factory, meter_factory, 5)
    client = console_as("Finance")

    page = client.get("/admin/reports/dashboard/usage/?start=2026-02&end=2026-02").content.decode()
    export = client.get("/admin/reports/dashboard/usage/export.csv?start=2026-02&end=2026-02")

    # The largest three of five, largest first, under the meter's total row (5 customers, 15 reported).
    assert page.count('<td class="tarif-col-text">Usage customer') == 3
    assert page.index("Usage customer 04") < page.index("Usage customer 03") < page.index("Usage customer 02")
    assert "Usage customer 01" not in page
    assert "All customers" in page
    assert "its 3 customers with the largest totals" in page
    assert export.streaming
    lines = b"".join(export.streaming_content).decode("utf-8-sig").splitlines()
    assert len(lines) == 1 + 5
    header, first = next(csv.reader(io.StringIO(lines[0]))), next(csv.reader(io.StringIO(lines[1])))
    assert header == ["meter", "customer id", "customer", "events", "total reported", "largest value"]
    assert first[2] == "Usage customer 04" and Decimal(first[4]) == Decimal(5)


def test_the_xlsx_export_has_every_customer(console_as, customer_factory, meter_factory, monkeypatch):
    from openpyxl import load_workbook

    monkeypatch.setattr("reports.selectors.operations.USAGE_TOP_CUSTOMERS", 2)
    _many_customers(customer_factory, meter_factory, 4)

    response = console_as("Read-only").get("/admin/reports/dashboard/usage/export.xlsx?start=2026-02&end=2026-02")

    rows = list(load_workbook(io.BytesIO(response.content)).active.values)
    assert len(rows) == 1 + 4


def _api(staff_factory, mode: str = "live") -> APIClient:
    _key, raw = api_key_create(name="usage", scope="read", mode=mode, created_by=staff_factory(username=f"bi-{mode}"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def test_the_api_pages_through_every_customer(staff_factory, customer_factory, meter_factory):
    _meter, customers = _many_customers(customer_factory, meter_factory, 5)
    api = _api(staff_factory)

    seen, url = [], "/api/v1/reports/usage/?start=2026-02&end=2026-02&limit=2"
    while True:
        body = api.get(url).json()
        seen += [row["customer_id"] for row in body["rows"]]
        assert len(body["rows"]) <= 2
        if not body["has_more"]:
            assert body["next_starting_after"] is None
            break
        url = f"/api/v1/reports/usage/?start=2026-02&end=2026-02&limit=2&starting_after={body['next_starting_after']}"

    assert seen == sorted(customer.pk for customer in customers)
    assert [column["key"] for column in body["columns"]] == [
        "meter",
        "customer_id",
        "customer",
        "events",
        "total",
        "peak",
    ]
    assert body["as_of_source"] == "live"


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=10001", "limit"), ("limit=x", "limit"), ("starting_after=3", "starting_after")],
)
def test_bad_paging_parameters_are_a_problem(staff_factory, query, field):
    response = _api(staff_factory).get(f"/api/v1/reports/usage/?{query}")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert field in response.content.decode()


def test_a_report_that_is_not_paged_refuses_paging_parameters(staff_factory):
    response = _api(staff_factory).get("/api/v1/reports/mrr/?limit=10")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    # Without paging parameters a report is one page.
    body = _api(staff_factory).get("/api/v1/reports/mrr/").json()
    assert (body["has_more"], body["next_starting_after"]) == (False, None)


def test_a_sandbox_key_sees_only_test_mode_usage_and_another_modes_customer_is_404(
    staff_factory, customer_factory, meter_factory
):
    meter = meter_factory()
    live, test = customer_factory(livemode=True), customer_factory(livemode=False)
    usage_events_insert(
        rows=[
            UsageEvent(
                customer=who, meter=meter, external_id=f"m-{who.pk}", timestamp=datetime(2026, 2, 10, tzinfo=UTC)
            )
            for who in (live, test)
        ]
    )
    sandbox = _api(staff_factory, mode="test")

    body = sandbox.get("/api/v1/reports/usage/?start=2026-02&end=2026-02").json()

    assert [row["customer_id"] for row in body["rows"]] == [test.pk]
    assert sandbox.get(f"/api/v1/reports/usage/?start=2026-02&end=2026-02&customer={live.pk}").status_code == 404
    table = REPORTS["usage"].build(ReportFilters(start=date(2026, 2, 1), end=date(2026, 2, 1), livemode=False))
    assert [row["customer"] for row in table.rows if row["rank"]] == [test.legal_name]


# -- The digest: the page of the preset periods, as of the last refresh -----------------------------


def test_the_page_reads_the_digest_of_its_preset_periods_and_says_as_of_when(
    console_as, customer_factory, meter_factory, settings
):
    import time_machine

    from reports.usage_digest import usage_digest_refresh

    settings.TARIF_REPORTS_TIMEZONE = "Europe/Paris"
    meter = meter_factory(name="API calls")
    customers = [customer_factory(legal_name=f"Digest customer {index}") for index in range(4)]
    now = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
    default = ReportFilters(start=date(2025, 4, 1), end=date(2026, 3, 1))
    this_month = ReportFilters(start=date(2026, 3, 1), end=date(2026, 3, 1))
    with time_machine.travel(now, tick=False):
        usage_events_insert(rows=_events(random.Random(9), customers, [meter], 120))
        assert selectors.usage_digest_overview(filters=default) is None  # never refreshed: live
        assert REPORTS["usage"].build(default).as_of.source == "live"

        usage_digest_refresh()

        for filters in (default, this_month, ReportFilters(start=date(2026, 2, 1), end=date(2026, 2, 1))):
            for livemode in (True, False):
                scoped = ReportFilters(start=filters.start, end=filters.end, livemode=livemode)
                assert selectors.usage_digest_overview(filters=scoped) == selectors.usage_overview(filters=scoped)
        table = REPORTS["usage"].build(default)
        assert (table.as_of.source, table.as_of.at) == ("summary", now)
        page = console_as("Finance").get("/admin/reports/dashboard/usage/").content.decode()
        assert "last refresh of the usage report" in page
        # Not a preset, or a filter: computed at the read.
        assert (
            selectors.usage_digest_overview(filters=ReportFilters(start=date(2026, 1, 1), end=date(2026, 3, 1))) is None
        )
        assert selectors.usage_digest_overview(filters=replace_filters(default, currency="EUR")) is None

    # Usage reported after the refresh: the digest keeps the refresh's figures (it says so) until
    # the next one; the files are read at the request.
    late = UsageEvent(
        customer=customers[0], meter=meter, external_id="late", timestamp=datetime(2026, 3, 19, tzinfo=UTC), value=10**6
    )
    with time_machine.travel(now + timedelta(minutes=5), tick=False):
        usage_events_insert(rows=[late])
        stale = selectors.usage_digest_overview(filters=this_month)
        assert stale != selectors.usage_overview(filters=this_month)
        assert stale.top[0].customer_id != customers[0].pk or stale.top[0].total < 10**6
        usage_digest_refresh()
        assert selectors.usage_digest_overview(filters=this_month) == selectors.usage_overview(filters=this_month)

    settings.TARIF_REPORTS_TIMEZONE = "America/New_York"  # months cut elsewhere: the digest no longer serves
    assert selectors.usage_digest_as_of(filters=default) is None


def replace_filters(filters: ReportFilters, **changes) -> ReportFilters:
    from dataclasses import replace

    return replace(filters, **changes)


def test_the_digest_has_its_beat_entry(settings):
    entry = settings.CELERY_BEAT_SCHEDULE[selectors.USAGE_DIGEST_BEAT_ENTRY]

    assert entry["task"] == "reports.refresh_usage_digest"


def test_the_command_refreshes_the_digest(customer_factory, meter_factory):
    import time_machine
    from django.core.management import call_command

    meter, customer = meter_factory(), customer_factory()
    usage_events_insert(rows=_events(random.Random(11), [customer], [meter], 20))
    out = io.StringIO()
    preset = ReportFilters(start=date(2025, 7, 1), end=date(2026, 6, 1))  # the default period in June 2026

    with time_machine.travel(datetime(2026, 6, 15, tzinfo=UTC), tick=False):
        assert selectors.usage_digest_as_of(filters=preset) is None
        call_command("reports_refresh_usage_digest", stdout=out)

    assert "Usage digest refreshed" in out.getvalue()
    assert selectors.usage_digest_as_of(filters=preset) == datetime(2026, 6, 15, tzinfo=UTC)


@postgresql_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_digest_refreshes_at_once_take_turns(customer_factory, meter_factory, monkeypatch):
    """The state row's lock serializes them: the digest holds one refresh's rows, never both."""
    import time

    from reports import usage_digest
    from reports.models import UsageDigestRow

    meter, customers = meter_factory(), [customer_factory() for _ in range(3)]
    usage_events_insert(rows=_events(random.Random(13), customers, [meter], 60))
    alone = usage_digest.usage_digest_refresh()
    compute = usage_digest.usage_overview

    def slow_overview(**kwargs):
        time.sleep(0.05)  # both refreshes are inside their transaction at once
        return compute(**kwargs)

    monkeypatch.setattr(usage_digest, "usage_overview", slow_overview)
    barrier = threading.Barrier(2)
    results: list = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(usage_digest.usage_digest_refresh())
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert results == [alone, alone]
    assert UsageDigestRow.objects.count() == alone
