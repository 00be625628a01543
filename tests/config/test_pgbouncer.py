"""Tarif behind PgBouncer in transaction mode (issue 20, docs/scaling.md): no session state.

Each test switches the `default` connection to the pooler (TARIF_PGBOUNCER_URL, in front of
DATABASE_URL's server: scripts/start-pgbouncer; .ci/run starts one) with the settings
DATABASE_POOLER=pgbouncer applies, then runs the paths that would break on session state:
a billing run (chunk transactions, COPY of lines and events, the locked finalization and its
numbers), an API write replayed by its idempotency key, a usage batch, a report. A negative
control proves the pooler really is in transaction mode."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection

from billing.locks import billing_run_scope_lock
from billing.models import BillingRun, Price, Subscription, SubscriptionItem, UsageEvent
from billing.services.billing_run import billing_run_start
from customers.models import Customer
from invoices.models import Invoice
from reports.filters import ReportFilters
from reports.registry import REPORTS
from tests.api.conftest import client_for

pytestmark = [pytest.mark.pgbouncer, pytest.mark.django_db(transaction=True)]

MONTHLY = {"kind": "interval", "unit": "month", "count": 1}
DUE_AT = datetime(2026, 3, 1, tzinfo=UTC)


def pooler_address() -> tuple[str, int]:
    url = os.environ.get("TARIF_PGBOUNCER_URL", "")
    if not url:
        pytest.skip("needs TARIF_PGBOUNCER_URL (scripts/start-pgbouncer)")
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6432


@pytest.fixture
def pooled(transactional_db, settings):
    """`default` connects through the pooler for the test; the flush afterwards goes direct."""
    host, port = pooler_address()
    saved = {key: connection.settings_dict.get(key) for key in ("HOST", "PORT", "OPTIONS")}
    saved_cursors = connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS", False)
    connection.close()
    connection.settings_dict.update(
        HOST=host,
        PORT=str(port),
        OPTIONS={**(saved["OPTIONS"] or {}), "prepare_threshold": None},
        DISABLE_SERVER_SIDE_CURSORS=True,
    )
    settings.DATABASE_POOLER = "pgbouncer"
    cache.clear()
    yield
    connection.close()
    connection.settings_dict.update(saved, DISABLE_SERVER_SIDE_CURSORS=saved_cursors)
    cache.clear()


def pooler_admin(sql: str) -> list[tuple]:
    host, port = pooler_address()
    with psycopg.connect(host=host, port=port, user="postgres", dbname="pgbouncer", autocommit=True) as admin:
        return admin.execute(sql).fetchall()


def direct_to_pooler() -> psycopg.Connection:
    host, port = pooler_address()
    return psycopg.connect(
        host=host,
        port=port,
        user="postgres",
        dbname=connection.settings_dict["NAME"],
        autocommit=True,
        prepare_threshold=None,
    )


def test_the_pooler_is_in_transaction_mode_so_session_state_does_not_follow_a_client(pooled):
    """Negative control: in session mode the SET below would still be visible to `second`."""
    with direct_to_pooler() as first, direct_to_pooler() as second:
        with first.transaction():
            first_server = first.execute("SELECT pg_backend_pid()").fetchone()[0]
            # `first` holds its server for the transaction: `second` gets another one.
            second.execute("SET tarif.pooler_probe = 'set by second'")
            set_on = second.execute("SELECT pg_backend_pid()").fetchone()[0]
        # `first` released its server last: PgBouncer hands the most recently used one on.
        read_on = second.execute("SELECT pg_backend_pid()").fetchone()[0]
        seen = second.execute("SELECT current_setting('tarif.pooler_probe', true)").fetchone()[0]

    assert first_server != set_on
    assert read_on == first_server and read_on != set_on
    assert seen in (None, "")  # the session-level SET stayed on the other server


def test_django_talks_through_the_pooler(pooled):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    databases = [row for row in pooler_admin("SHOW CLIENTS") if connection.settings_dict["NAME"] in row]
    assert databases, "no client of the test database on the pooler"


def make_due_subscriptions(*, count: int, customer_factory, price: Price) -> list[Subscription]:
    start = DUE_AT - timedelta(days=28)
    subscriptions = Subscription.objects.bulk_create(
        [
            Subscription(
                customer=customer_factory(),
                status="active",
                currency="EUR",
                cycle=MONTHLY,
                billing_cycle_anchor=start,
                current_period_start=start,
                current_period_end=DUE_AT,
            )
            for _ in range(count)
        ]
    )
    SubscriptionItem.objects.bulk_create(
        [SubscriptionItem(subscription=s, price=price, quantity=1) for s in subscriptions]
    )
    return subscriptions


def test_a_billing_run_finalizes_and_numbers_invoices_through_the_pooler(
    pooled, tax_rate, price_factory, customer_factory
):
    # Given three subscriptions due, reached through the pooler only
    price = price_factory(unit_amount=Decimal(2900), cycle=MONTHLY)
    make_due_subscriptions(count=3, customer_factory=customer_factory, price=price)

    # When a billing run bills them (chunk transactions, COPY of lines and events, the brand's
    # sequence lock at finalization) and the same run is started again
    run = billing_run_start(as_of=DUE_AT + timedelta(hours=1), chunk_size=2)
    again = billing_run_start(as_of=DUE_AT + timedelta(hours=2))

    # Then each is billed once, numbered without gaps, and no session lock is left on a server
    assert run.status == BillingRun.Status.DONE and run.invoices_created == 3
    assert again.total == 0
    invoices = Invoice.objects.filter(billing_reason="subscription_cycle").order_by("number")
    sequence_numbers = sorted(int(invoice.number.rsplit("-", 1)[1]) for invoice in invoices)
    assert sequence_numbers == list(range(sequence_numbers[0], sequence_numbers[0] + 3))
    assert all(invoice.status == "open" and invoice.lines.exists() for invoice in invoices)
    assert advisory_locks() == 0

    # And a report reads what the run billed
    table = REPORTS["billed"].build(ReportFilters(start=date(2026, 1, 1), end=date(2026, 12, 1)))
    assert sum(row["total"] for row in table.rows) == sum(invoice.total for invoice in invoices)


@pytest.fixture
def api(pooled, staff_factory):
    from config.api.keys import api_key_create

    _key, raw = api_key_create(name="pooled", scope="read_write", mode="live", created_by=staff_factory())
    return client_for(raw)


def test_an_api_write_is_replayed_by_its_idempotency_key_through_the_pooler(api, brand):
    body = {"legal_name": "Pooled SAS", "email": "pooled@example.com", "country": "FR"}

    first = api.post("/api/v1/customers", body, format="json", HTTP_IDEMPOTENCY_KEY="pooled-1")
    second = api.post("/api/v1/customers", body, format="json", HTTP_IDEMPOTENCY_KEY="pooled-1")
    listed = [api.get("/api/v1/customers").json() for _ in range(7)]  # more than psycopg's prepare threshold

    assert first.status_code == second.status_code == 201, first.content
    assert second["Idempotent-Replayed"] == "true" and second.json() == first.json()
    assert Customer.objects.filter(legal_name="Pooled SAS").count() == 1
    assert all(page["data"][0]["id"] == first.json()["id"] for page in listed)


def test_a_usage_batch_is_ingested_through_the_pooler(api, tax_rate, customer, meter, price_factory):
    licensed = price_factory(unit_amount=Decimal(2900))
    metered = price_factory(
        unit_amount=Decimal("0.5"), usage_type=Price.UsageType.METERED, meter=meter, product=licensed.product
    )
    created = api.post(
        "/api/v1/subscriptions",
        {
            "customer": f"cus_{customer.pk}",
            "items": [{"price": f"price_{licensed.pk}"}, {"price": f"price_{metered.pk}"}],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    start = customer.subscriptions.get().current_period_start
    at = max(datetime.now(tz=UTC).replace(microsecond=0) - timedelta(seconds=1), start).isoformat()
    batch = [
        {"id": f"evt-{n}", "customer": f"cus_{customer.pk}", "meter": meter.key, "timestamp": at, "value": 2}
        for n in range(200)
    ]

    first = api.post("/api/v1/usage_events", {"events": batch}, format="json")
    again = api.post("/api/v1/usage_events", {"events": batch[:50]}, format="json")

    assert first.json() == {"object": "usage_batch", "accepted": 200, "duplicates": 0, "errors": []}, first.content
    assert again.json()["duplicates"] == 50
    assert UsageEvent.objects.filter(customer=customer).count() == 200


def advisory_locks() -> int:
    with connection.cursor() as cursor:
        # This database's only: other test processes share the server.
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return cursor.fetchone()[0]


def test_the_billing_run_scope_lock_holds_no_session_lock_behind_the_pooler(pooled, settings):
    """A session advisory lock would stay on whichever server ran it (and the unlock could run on
    another): behind the pooler, without a session connection, the scope lock is not taken."""
    with billing_run_scope_lock(scope="live") as taken:
        held_pooled = advisory_locks()
    settings.DATABASE_POOLER = ""  # control: the same connection, configured as a direct one
    with billing_run_scope_lock(scope="live") as taken_direct:
        held_direct = advisory_locks()

    assert taken and held_pooled == 0
    assert taken_direct and held_direct == 1
    assert advisory_locks() == 0
