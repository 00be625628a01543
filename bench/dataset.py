"""Large dataset generator (issue 20): N customers with a year of billing history, built
server-side by PostgreSQL in minutes.

    DATABASE_URL=postgres://postgres@127.0.0.1:55433/tarif_scale_100k \
        .venv/bin/python bench/dataset.py --subscriptions 100000

Empties the database named by DATABASE_URL (never point it at real data), then writes:
- customers across eight countries and four currencies (EUR, USD, GBP, CAD), one
  subscription each on a monthly price of its currency (flat, per seat or yearly), a tenth
  also on a metered price; 30 % start during the year, 10 % cancel;
- a year of history (December 2025 to November 2026): an issued invoice per period with
  its subscription line (and a usage line for metered customers), paid ones with their
  payment, about 1 % credited by a credit note;
- --usage-per-subscription usage events (default 100) for the biggest meter, spread over
  the year, on every subscription.

How (the old generator built a Django object per row: 3,321 rows/s): every table is filled
by `INSERT … SELECT … FROM generate_series(…)` computed by PostgreSQL, with no row
crossing to Python. A temporary table holds each customer's plan (derived from its index
with `hashint8`, so a rerun builds the same data); invoices, lines, payments and credit
notes are inserted month by month, usage events by chunks of customers. The whole load is
ONE transaction that first drops the loaded tables' secondary indexes, unique and
foreign-key constraints and recreates them at the end (PostgreSQL's DDL is transactional:
an interrupted load rolls back to the empty, fully indexed schema). Re-adding a foreign key
or a unique constraint checks every row, so the data is verified as it would have been row
by row. `session_replication_role = replica` is set for the load's session only, so that
the issued-document triggers (which refuse lines added to an issued invoice) let the
lines of already issued invoices in; it needs a superuser (the benchmarks connect as
`postgres`; the application's role could not, by design) and ends with the session.
Then ANALYZE, and the MRR summary's first build (as its beat task would; `--no-summary`
skips it). Prints rows and rows/s per table; a progress bar (tqdm) while it runs.

Valid for the application: every NOT NULL column is filled (a column the generator does
not set gets its model default, as `bulk_create` would), numbers are gapless per brand and
year (`DS-2026-00000001`…, credit notes `DSC-…`) in date order, with their number
sequence rows, so a billing run on the dataset continues the series. The issued
documents' hash chain (`chain_hash`) is NOT built: nothing the benchmarks run verifies
it; `check_integrity`'s chain check would report the dataset's documents as unchained.
`--reuse` keeps a dataset of the same size already there (another benchmark's run).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from billing_run import reset_database, setup_django  # noqa: E402 - after the path

BRAND_SLUG = "dataset"
FIRST_MONTH = datetime(2025, 12, 1, tzinfo=UTC)
MONTHS = 12
INVOICE_FORMAT = "DS-{year}-{seq:08d}"
CREDIT_NOTE_FORMAT = "DSC-{year}-{seq:08d}"
# (country, currency, is_business, tax rate %, language)
PROFILES = [
    ("FR", "EUR", True, 20, "fr"),
    ("FR", "EUR", False, 20, "fr"),
    ("DE", "EUR", True, 19, "en"),
    ("BE", "EUR", True, 21, "fr"),
    ("ES", "EUR", False, 21, "en"),
    ("US", "USD", True, 0, "en"),
    ("GB", "GBP", True, 20, "en"),
    ("CA", "CAD", True, 5, "en"),
]
PLAN_AMOUNTS = {"flat": 2900, "seat": 1500, "yearly": 29000}
LOADED = [
    "customers.Customer",
    "billing.Subscription",
    "billing.SubscriptionItem",
    "invoices.Invoice",
    "invoices.InvoiceLine",
    "billing.Payment",
    "invoices.CreditNote",
    "billing.UsageEvent",
]
TABLE_NAMES = ("customers", "subscriptions", "items", "invoices", "lines", "payments", "credit_notes", "usage_events")


def _month(offset: int) -> datetime:
    year, month = divmod(FIRST_MONTH.month - 1 + offset, 12)
    return FIRST_MONTH.replace(year=FIRST_MONTH.year + year, month=month + 1)


def existing_size() -> int | None:
    """The number of customers of a dataset already built here (None: none)."""
    from customers.models import Customer
    from invoices.models import Brand

    brand = Brand.objects.filter(slug=BRAND_SLUG).first()
    return None if brand is None else Customer.objects.filter(brand=brand).count()


def tax_rates() -> None:
    """Each profile country's standard rate (reset_database empties the table): the portal's
    upcoming invoice and a change preview compute tax."""
    from invoices.models import TaxRate

    for country, rate in sorted({(profile[0], profile[3]) for profile in PROFILES}):
        if not TaxRate.objects.filter(country=country, is_standard=True, active=True).exists():
            TaxRate.objects.create(country=country, percentage=Decimal(rate))


def _catalog():
    from billing.models import Meter, Price, Product

    monthly = {"kind": "interval", "unit": "month", "count": 1}
    yearly = {"kind": "interval", "unit": "year", "count": 1}
    product = Product.objects.create(name="Dataset plans")
    meter = Meter.objects.create(key="dataset_calls", name="API calls", aggregation=Meter.Aggregation.SUM)
    prices = {}
    for currency in sorted({profile[1] for profile in PROFILES}):
        prices[currency] = {
            plan: Price.objects.create(
                product=product,
                currency=currency,
                unit_amount=Decimal(amount),
                cycle=yearly if plan == "yearly" else monthly,
            )
            for plan, amount in PLAN_AMOUNTS.items()
        }
        prices[currency]["metered"] = Price.objects.create(
            product=product,
            currency=currency,
            unit_amount=Decimal("0.5"),
            cycle=monthly,
            usage_type=Price.UsageType.METERED,
            meter=meter,
        )
    return meter, prices


class Loader:
    """INSERT … SELECT into a model's table: the columns given as SQL expressions, every
    other column its model default (computed once, sent as a parameter), `auto_now` columns
    `now()`, the primary key from its identity unless given."""

    def __init__(self, cursor, progress) -> None:
        self.cursor = cursor
        self.progress = progress
        self.rows: dict[str, int] = dict.fromkeys(TABLE_NAMES, 0)
        self.seconds: dict[str, float] = dict.fromkeys(TABLE_NAMES, 0.0)

    def insert(self, name: str, model, columns: dict[str, str], source: str, params: list | None = None) -> int:
        from django.db import connection

        names, expressions, values = [], [], []
        for field in model._meta.concrete_fields:
            if field.column in columns:
                expression = columns[field.column]
            elif field.primary_key:
                continue
            elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                expression = "now()"
            else:
                default = field.get_default()
                if default is None and not field.null:
                    raise ValueError(f"{model.__name__}.{field.name}: NOT NULL without a default, give it")
                expression = "%s"
                values.append(field.get_db_prep_save(default, connection))
            names.append(connection.ops.quote_name(field.column))
            expressions.append(expression)
        unknown = set(columns) - {field.column for field in model._meta.concrete_fields}
        if unknown:
            raise ValueError(f"{model.__name__}: no column {sorted(unknown)}")
        sql = f"INSERT INTO {model._meta.db_table} ({', '.join(names)}) SELECT {', '.join(expressions)} FROM {source}"
        started = time.perf_counter()
        self.cursor.execute(sql, values + list(params or []))
        count = self.cursor.rowcount
        self.seconds[name] += time.perf_counter() - started
        self.rows[name] += count
        self.progress.update(count)
        self.progress.set_postfix_str(name)
        return count


def _secondary_schema(cursor, tables: list[str]) -> tuple[list[str], list[str]]:
    """(drop statements, recreate statements) for the tables' unique and foreign-key
    constraints and their other indexes (the primary keys stay)."""
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('u', 'f', 'x') ORDER BY contype DESC, conname",
        [tables],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = ANY(%s::regclass[]) AND NOT indisprimary "
        "AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE contype IN ('p', 'u', 'x'))",
        [tables],
    )
    indexes = cursor.fetchall()
    drops = [f'ALTER TABLE {table} DROP CONSTRAINT "{name}"' for table, name, _kind, _definition in constraints]
    drops += [f"DROP INDEX {index}" for index, _definition in indexes]
    # An index of a partitioned table reads back as `CREATE INDEX … ON ONLY parent`: recreated
    # so, it would cover no partition and stay INVALID, unused (the usage events' customer index
    # of the 1M dataset of 7 December: the customer hub's usage panel scanned 10 M events, 0.8 s).
    recreates = [definition.replace(" ON ONLY ", " ON ", 1) for _index, definition in indexes]
    # Unique constraints first: a foreign key may reference one.
    recreates += [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for table, name, kind, definition in sorted(constraints, key=lambda row: row[2] == "f")
    ]
    return drops, recreates


def _plan_table(cursor, *, count: int, prices, meter_id: int) -> None:
    """ds_plan: one row per customer index i (1…count): its profile, plan and months."""
    profiles = ", ".join(
        f"({index}, '{country}', '{currency}', {str(business).lower()}, {rate}, '{language}')"
        for index, (country, currency, business, rate, language) in enumerate(PROFILES)
    )
    catalog = ", ".join(
        f"('{currency}', '{plan}', {price.pk})" for currency, plans in prices.items() for plan, price in plans.items()
    )
    cursor.execute(
        "CREATE FUNCTION pg_temp.ds_h(i bigint, salt int) RETURNS float8 LANGUAGE sql IMMUTABLE AS "
        "$$ SELECT (hashint8(i * 1000 + salt) & 2147483647)::float8 / 2147483648 $$"
    )
    cursor.execute(
        f"""
        CREATE TEMPORARY TABLE ds_plan AS
        WITH base AS (
            SELECT i,
                   CASE WHEN mod(i, 10) = 0 THEN 'yearly' WHEN mod(i, 3) = 0 THEN 'seat' ELSE 'flat' END AS plan,
                   CASE WHEN pg_temp.ds_h(i, 1) < 0.7 THEN 0 ELSE floor(pg_temp.ds_h(i, 2) * {MONTHS})::int END
                       AS start_m
            FROM generate_series(1, %s) AS i
        ), planned AS (
            SELECT base.*,
                   CASE WHEN pg_temp.ds_h(i, 3) < 0.1
                        THEN start_m + 1 + floor(pg_temp.ds_h(i, 4) * ({MONTHS} - start_m))::int
                        ELSE {MONTHS} END AS end_m
            FROM base
        )
        SELECT planned.i, planned.plan, planned.start_m, LEAST(planned.end_m, {MONTHS}) AS end_m,
               CASE WHEN planned.plan = 'seat' THEN 1 + mod(planned.i, 7) ELSE 1 END AS quantity,
               mod(planned.i, 10) = 3 AS metered,
               CASE WHEN mod(planned.i, 10) = 3 THEN 50 * (1 + mod(planned.i, 40)) ELSE 0 END AS usage_amount,
               p.country, p.currency, p.business, p.rate, p.language,
               c.price_id, m.price_id AS metered_price_id,
               CASE planned.plan WHEN 'yearly' THEN {PLAN_AMOUNTS["yearly"]} WHEN 'seat' THEN {PLAN_AMOUNTS["seat"]}
                    ELSE {PLAN_AMOUNTS["flat"]} END
                 * CASE WHEN planned.plan = 'seat' THEN 1 + mod(planned.i, 7) ELSE 1 END AS amount
        FROM planned
        JOIN (VALUES {profiles}) AS p(profile, country, currency, business, rate, language)
          ON p.profile = mod(planned.i, {len(PROFILES)})
        JOIN (VALUES {catalog}) AS c(currency, plan, price_id) ON c.currency = p.currency AND c.plan = planned.plan
        JOIN (VALUES {catalog}) AS m(currency, plan, price_id) ON m.currency = p.currency AND m.plan = 'metered'
        """,
        [count],
    )
    cursor.execute("ALTER TABLE ds_plan ADD PRIMARY KEY (i)")
    cursor.execute("ANALYZE ds_plan")


def _month_sql(expression: str) -> str:
    return f"(timestamptz '{FIRST_MONTH.isoformat()}' + make_interval(months => {expression}))"


def seed(*, count: int, chunk: int, usage_per_subscription: int) -> tuple[dict[str, int], dict[str, float]]:
    from django.apps import apps
    from django.db import connection, transaction
    from tqdm import tqdm

    from billing.models import Payment, Subscription, SubscriptionItem, UsageEvent, UsageEventKey, UsageRollup
    from billing.services.usage_rollups import MONTH_ROLLUPS_FROM_DAILY_POSTGRESQL
    from customers.models import Customer
    from invoices.models import Brand, CreditNote, Invoice, InvoiceLine, NumberSequence

    tables = [apps.get_model(label)._meta.db_table for label in LOADED]
    # Roughly: customers, subscriptions, 1.1 items, ~9 invoices, ~9.9 lines, ~8.8 payments, usage.
    expected = count * (3 + 1 + 9 + 10 + 9) + count * usage_per_subscription
    progress = tqdm(total=expected, unit="row", unit_scale=True, file=sys.stderr, smoothing=0.1)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL work_mem = '128MB'")
        drops, recreates = _secondary_schema(cursor, tables)
        for statement in drops:
            cursor.execute(statement)
        brand = Brand.objects.create(
            slug=BRAND_SLUG,
            name="Dataset",
            legal_name="Dataset SAS",
            address_line1="1 rue du Test",
            postal_code="75001",
            city="Paris",
            country="FR",
            is_default=True,
            invoice_number_format=INVOICE_FORMAT,
            credit_note_number_format=CREDIT_NOTE_FORMAT,
        )
        meter, prices = _catalog()
        tax_rates()
        _plan_table(cursor, count=count, prices=prices, meter_id=meter.pk)
        load = Loader(cursor, progress)
        first = _month_sql("0")
        for low in range(1, count + 1, chunk):
            high = min(low + chunk - 1, count)
            load.insert(
                "customers",
                Customer,
                {
                    "id": "p.i",
                    "legal_name": "'Dataset customer ' || p.i",
                    "email": "'c' || p.i || '@dataset.example'",
                    "country": "p.country",
                    "is_business": "p.business",
                    "currency": "p.currency",
                    "preferred_language": "p.language",
                    "brand_id": str(brand.pk),
                    "created_at": f"{first} + make_interval(months => p.start_m) - interval '1 day'",
                    "updated_at": f"{first} + make_interval(months => p.start_m) - interval '1 day'",
                },
                "ds_plan AS p WHERE p.i BETWEEN %s AND %s",
                [low, high],
            )
            load.insert(
                "subscriptions",
                Subscription,
                {
                    "id": "p.i",
                    "customer_id": "p.i",
                    "status": "CASE WHEN p.end_m < 12 THEN 'canceled' ELSE 'active' END",
                    "currency": "p.currency",
                    "cycle": 'CASE WHEN p.plan = \'yearly\' THEN \'{"kind": "interval", "unit": "year", '
                    '"count": 1}\'::jsonb ELSE \'{"kind": "interval", "unit": "month", "count": 1}\'::jsonb END',
                    "billing_cycle_anchor": _month_sql("p.start_m"),
                    "current_period_start": "CASE WHEN p.plan = 'yearly' THEN "
                    + _month_sql("p.start_m")
                    + " ELSE "
                    + _month_sql("GREATEST(p.end_m, 1) - 1")
                    + " END",
                    "current_period_end": "CASE WHEN p.plan = 'yearly' THEN "
                    + _month_sql("p.start_m + 12")
                    + " ELSE "
                    + _month_sql("GREATEST(p.end_m, 1)")
                    + " END",
                    "canceled_at": f"CASE WHEN p.end_m < 12 THEN {_month_sql('p.end_m')} END",
                    "ended_at": f"CASE WHEN p.end_m < 12 THEN {_month_sql('p.end_m')} END",
                    "created_at": _month_sql("p.start_m"),
                    "updated_at": _month_sql("p.end_m"),
                },
                "ds_plan AS p WHERE p.i BETWEEN %s AND %s",
                [low, high],
            )
            load.insert(
                "items",
                SubscriptionItem,
                {
                    "subscription_id": "p.i",
                    "price_id": "CASE WHEN metered.flag THEN p.metered_price_id ELSE p.price_id END",
                    "quantity": "CASE WHEN metered.flag THEN 1 ELSE p.quantity END",
                    "created_at": _month_sql("p.start_m"),
                },
                "ds_plan AS p JOIN (VALUES (false), (true)) AS metered(flag) ON NOT metered.flag OR p.metered "
                "WHERE p.i BETWEEN %s AND %s",
                [low, high],
            )
        numbers = {"invoice": {}, "credit_note": {}}  # kind -> year -> (last value, last issued at)
        next_invoice_id = 1
        for month in range(MONTHS):
            at = _month(month)
            year = at.year  # the brand's time zone (Paris) is ahead of UTC: same year at 00:00 UTC
            issued = numbers["invoice"].get(year, (0, None))[0]
            created = load.insert(
                "invoices",
                Invoice,
                {
                    "id": f"{next_invoice_id - 1} + row_number() OVER (ORDER BY p.i)",
                    "brand_id": str(brand.pk),
                    "customer_id": "p.i",
                    "subscription_id": "p.i",
                    "number": f"'DS-{year}-' || lpad(({issued} + row_number() OVER (ORDER BY p.i))::text, 8, '0')",
                    "status": "CASE WHEN v.paid THEN 'paid' ELSE 'open' END",
                    "billing_reason": "'subscription_cycle'",
                    "currency": "p.currency",
                    "language": "p.language",
                    "period_start": "v.period_start",
                    "period_end": "v.period_end",
                    "subtotal": "v.net",
                    "tax_total": "v.tax",
                    "total_excluding_tax": "v.net",
                    "total": "v.net + v.tax",
                    "amount_due": "v.net + v.tax",
                    "amount_paid": "CASE WHEN v.paid THEN v.net + v.tax ELSE 0 END",
                    "amount_remaining": "CASE WHEN v.paid THEN 0 ELSE v.net + v.tax END",
                    "finalized_at": "v.period_start",
                    "paid_at": "CASE WHEN v.paid THEN v.period_start + interval '2 days' END",
                    "due_at": "v.period_start + interval '30 days'",
                    "created_at": "v.period_start",
                    "updated_at": "CASE WHEN v.paid THEN v.period_start + interval '2 days' ELSE v.period_start END",
                },
                f"""ds_plan AS p CROSS JOIN LATERAL (
                    SELECT {_month_sql(str(month))} AS period_start,
                           {_month_sql(f"{month} + CASE WHEN p.plan = 'yearly' THEN 12 ELSE 1 END")} AS period_end,
                           p.amount + CASE WHEN {month} > p.start_m THEN p.usage_amount ELSE 0 END AS net,
                           (p.amount + CASE WHEN {month} > p.start_m THEN p.usage_amount ELSE 0 END) * p.rate / 100
                               AS tax,
                           {month} < {MONTHS - 1} OR pg_temp.ds_h(p.i, 100 + {month}) < 0.8 AS paid
                ) AS v
                WHERE p.start_m <= {month} AND {month} < p.end_m
                  AND (p.plan <> 'yearly' OR p.start_m = {month})""",
            )
            first_id, last_id = next_invoice_id, next_invoice_id + created - 1
            next_invoice_id += created
            if created:
                numbers["invoice"][year] = (issued + created, at)
            invoice_range = "inv.id BETWEEN %s AND %s"
            load.insert(
                "lines",
                InvoiceLine,
                {
                    "invoice_id": "inv.id",
                    "position": "usage.flag::int",
                    "kind": "CASE WHEN usage.flag THEN 'usage' ELSE 'subscription' END",
                    "description": "CASE WHEN usage.flag THEN 'API calls' ELSE p.plan END",
                    "price_id": "CASE WHEN usage.flag THEN p.metered_price_id ELSE p.price_id END",
                    "quantity": "CASE WHEN usage.flag THEN (inv.subtotal - p.amount) * 2 ELSE p.quantity END",
                    "unit_amount": "CASE WHEN usage.flag THEN 0.5 ELSE p.amount / p.quantity END",
                    "amount": "CASE WHEN usage.flag THEN inv.subtotal - p.amount ELSE p.amount END",
                    "tax_rate": "p.rate",
                    "tax_amount": "CASE WHEN usage.flag THEN inv.subtotal - p.amount ELSE p.amount END * p.rate / 100",
                    "period_start": f"CASE WHEN usage.flag THEN {_month_sql(str(month - 1))} ELSE inv.period_start END",
                    "period_end": "CASE WHEN usage.flag THEN inv.period_start ELSE inv.period_end END",
                },
                "invoices_invoice AS inv JOIN ds_plan AS p ON p.i = inv.customer_id "
                "JOIN (VALUES (false), (true)) AS usage(flag) ON NOT usage.flag OR inv.subtotal > p.amount "
                f"WHERE {invoice_range}",
                [first_id, last_id],
            )
            load.insert(
                "payments",
                Payment,
                {
                    "invoice_id": "inv.id",
                    "customer_id": "inv.customer_id",
                    "method": "'card'",
                    "gateway": "'sandbox'",
                    "status": "'succeeded'",
                    "amount": "inv.total",
                    "currency": "inv.currency",
                    "attempt": "1",
                    "idempotency_key": "'invoice:' || inv.id || ':attempt:1'",
                    "attempted_at": "inv.paid_at",
                    "settled_at": "inv.paid_at",
                    "created_at": "inv.paid_at",
                },
                f"invoices_invoice AS inv WHERE {invoice_range} AND inv.status = 'paid'",
                [first_id, last_id],
            )
            note_at = at + timedelta(days=5)
            noted = numbers["credit_note"].get(note_at.year, (0, None))[0]
            credited = load.insert(
                "credit_notes",
                CreditNote,
                {
                    "invoice_id": "inv.id",
                    "brand_id": "inv.brand_id",
                    "customer_id": "inv.customer_id",
                    "number": f"'DSC-{note_at.year}-' || lpad(({noted} + row_number() OVER (ORDER BY inv.id))::text, "
                    "8, '0')",
                    "reason": "'product_unsatisfactory'",
                    "currency": "inv.currency",
                    "subtotal": "inv.subtotal",
                    "tax_total": "inv.tax_total",
                    "total": "inv.total",
                    "credited_to_balance": "inv.total",
                    "issued_at": "inv.finalized_at + interval '5 days'",
                    "created_at": "inv.finalized_at + interval '5 days'",
                },
                f"invoices_invoice AS inv WHERE {invoice_range} AND pg_temp.ds_h(inv.id, 7) < 0.01",
                [first_id, last_id],
            )
            if credited:
                numbers["credit_note"][note_at.year] = (noted + credited, note_at)
        year_seconds = int((_month(MONTHS) - FIRST_MONTH).total_seconds())
        usage_chunk = max(1, min(chunk, 2_000_000 // max(usage_per_subscription, 1)))
        for low in range(1, count + 1 if usage_per_subscription else 1, usage_chunk):
            high = min(low + usage_chunk - 1, count)
            load.insert(
                "usage_events",
                UsageEvent,
                {
                    "customer_id": "p.i",
                    "meter_id": str(meter.pk),
                    "external_id": "'ds-' || p.i || '-' || n",
                    "value": "1 + mod(n, 5)",
                    "timestamp": "v.at",
                    "created_at": "v.at",
                },
                f"""ds_plan AS p CROSS JOIN generate_series(0, %s) AS n CROSS JOIN LATERAL (
                    SELECT {first} + make_interval(secs => s.first_second
                        + floor(pg_temp.ds_h(p.i * 1000 + n, 9) * ({year_seconds} - s.first_second))) AS at
                    FROM (SELECT extract(epoch FROM {_month_sql("p.start_m")} - {first})::bigint AS first_second) AS s
                ) AS v WHERE p.i BETWEEN %s AND %s""",
                [usage_per_subscription - 1, low, high],
            )
        if usage_per_subscription:
            # What ingestion keeps beside the events (billing.services.usage): the dedup keys and
            # the daily rollups the billing run reads (events carry no properties: one bucket per day).
            progress.set_postfix_str("usage keys and rollups")
            cursor.execute(
                f"INSERT INTO {UsageEventKey._meta.db_table} (meter_id, external_id, timestamp) "
                f"SELECT meter_id, external_id, timestamp FROM {UsageEvent._meta.db_table}"
            )
            cursor.execute(
                f"INSERT INTO {UsageRollup._meta.db_table} (customer_id, meter_id, day, dimensions_hash, "
                "properties, event_count, value_sum, value_max, last_timestamp, last_event_id, last_value) "
                "SELECT customer_id, meter_id, day, md5('{}'), '{}'::jsonb, count(*), sum(value), max(value), "
                "(array_agg(timestamp ORDER BY timestamp DESC, id DESC))[1], "
                "(array_agg(id ORDER BY timestamp DESC, id DESC))[1], "
                "(array_agg(value ORDER BY timestamp DESC, id DESC))[1] "
                f"FROM (SELECT *, (timestamp AT TIME ZONE 'UTC')::date AS day FROM {UsageEvent._meta.db_table}) AS e "
                "GROUP BY customer_id, meter_id, day"
            )
            # Issue 20 item 7: the month rollups of the usage report, from the daily ones.
            cursor.execute(MONTH_ROLLUPS_FROM_DAILY_POSTGRESQL)
        for kind, years in numbers.items():
            for year, (last_value, last_issued_at) in years.items():
                NumberSequence.objects.create(
                    brand=brand, kind=kind, scope=str(year), last_value=last_value, last_issued_at=last_issued_at
                )
        progress.set_postfix_str("indexes and constraints")
        started = time.perf_counter()
        for statement in recreates:
            cursor.execute(statement)
        load.seconds["indexes"] = time.perf_counter() - started
        for table in tables:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT max(id) FROM {table}), 1))"
            )
    progress.close()
    return load.rows, load.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=20_000)
    parser.add_argument("--usage-per-subscription", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=100_000, help="customers per INSERT statement")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--reuse", action="store_true", help="keep a dataset of this size if one is there")
    parser.add_argument(
        "--no-summary", action="store_true", help="skip the MRR summary's first build (run the refresh command later)"
    )
    arguments = parser.parse_args()
    if arguments.subscriptions < 1 or arguments.chunk < 1 or arguments.usage_per_subscription < 0:
        parser.error("--subscriptions and --chunk must be at least 1, --usage-per-subscription at least 0")
    setup_django(arguments.database_url)

    from django.db import connection

    if connection.vendor != "postgresql":
        parser.error("the dataset is built by PostgreSQL: set DATABASE_URL to a PostgreSQL database")
    if arguments.reuse:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        if existing_size() == arguments.subscriptions:
            print(f"reusing the dataset of {arguments.subscriptions} subscriptions already in the database")
            return 0
    reset_database()
    with connection.cursor() as cursor:  # the tables reset_database leaves (issue 20's rows)
        cursor.execute("SET tarif.allow_truncate = on")
        cursor.execute("TRUNCATE billing_payment, billing_refund, billing_dunningcase RESTART IDENTITY CASCADE")
        cursor.execute("RESET tarif.allow_truncate")
    started = time.perf_counter()
    rows, seconds = seed(
        count=arguments.subscriptions, chunk=arguments.chunk, usage_per_subscription=arguments.usage_per_subscription
    )
    loaded = time.perf_counter() - started
    analyze_started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SELECT pg_database_size(current_database())")
        size = cursor.fetchone()[0]
    analyze_seconds = time.perf_counter() - analyze_started
    # What the beat task does on a live system: the MRR reports read this summary, never
    # the invoice lines (a dataset without it would time the live fallback instead).
    from reports.summary import mrr_summary_refresh

    summary_started = time.perf_counter()
    if not arguments.no_summary:
        mrr_summary_refresh(full=True)
    summary_seconds = time.perf_counter() - summary_started
    total = sum(rows.values())
    for name, value in rows.items():
        rate = value / seconds[name] if seconds[name] else 0
        print(f"{name}: {value} rows in {seconds[name]:.1f} s ({rate:,.0f} rows/s)")
    print(f"indexes_and_constraints_seconds: {seconds['indexes']:.1f}")
    print(f"analyze_seconds: {analyze_seconds:.1f}")
    print(f"mrr_summary_build_seconds: {summary_seconds:.1f}")
    print(f"database_size_gb: {size / 1e9:.2f}")
    print(f"rows: {total}")
    elapsed = loaded + analyze_seconds
    print(f"seconds: {elapsed:.1f}")
    print(f"rows_per_second: {total / elapsed:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
