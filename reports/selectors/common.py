"""SQL helpers every report selector shares: the billed statuses, a line's net amount, the
month calendar as a CTE, the MRR factor of each price, the central filters.

Every query of the reports runs unchanged on SQLite and PostgreSQL. Python only
assembles the aggregated rows (a few per month) and divides totals into rates. Money is
integer minor units in the row's currency; amounts in different currencies are never
added together. This module imports no other report module (the MRR summary's writer,
reports/summary.py, builds on it too).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any

from django.db import connection, transaction

from billing.models import Price
from billing.selectors import cycle_spec
from config.db_routers import read_connection
from reports.filters import ReportFilters, add_months, month_start, report_timezone

# Invoices that bill something: issued and not voided (uncollectible ones were billed).
BILLED_STATUSES = ("open", "paid", "uncollectible")
MOVEMENT_KINDS = ("new", "expansion", "contraction", "churn", "reactivation")

# A line's revenue excluding tax and net of its discounts (inclusive tax is inside `amount`).
LINE_NET_SQL = "(l.amount - l.discount_amount - CASE WHEN l.tax_inclusive THEN l.tax_amount ELSE 0 END)"

# Reports count one mode: live data unless the viewer is in test mode (ReportFilters.livemode).
# The clause excludes the other mode's customers (a short list in production: the test ones).
TEST_MODE_CUSTOMERS_SQL = "SELECT id FROM customers_customer WHERE livemode = %s"


def month_number(year: int, month: int) -> int:
    """The MRR summary's month key: year × 12 + month − 1."""
    return year * 12 + month - 1


def db_datetime(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
    """Run one read-only analytic statement and return its rows (on the replica inside `use_replica`)."""
    reader = read_connection()
    with transaction.atomic(using=reader.alias), reader.cursor() as cursor:
        if reader.vendor == "postgresql":
            # One big analytic statement: JIT compilation costs seconds here and saves
            # nothing, and sorts of a million customer-months should stay in memory.
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def fetch_stream(sql: str, params: Sequence[Any], *, chunk: int = 2_000) -> Iterator[tuple]:
    """`fetch`'s rows `chunk` at a time from a server-side cursor on PostgreSQL (bounded memory
    for the exports of a million rows). Opens its transaction when first iterated and closes it
    when exhausted or closed (a client that leaves a streamed download early)."""
    reader = read_connection()
    with transaction.atomic(using=reader.alias):
        if reader.vendor == "postgresql":
            with reader.cursor() as settings:
                settings.execute("SET LOCAL jit = off")
                settings.execute("SET LOCAL work_mem = '64MB'")
        cursor = reader.chunked_cursor()
        try:
            cursor.execute(sql, list(params))
            while rows := cursor.fetchmany(chunk):
                yield from rows
        finally:
            cursor.close()


def months_cte(name: str, months: Sequence[date], *, first_index: int = 0) -> tuple[str, list[Any]]:
    """`name(idx, month_start, month_end)`: one row per month of the reporting calendar.

    Month indexes are literals (our own integers); the instants are parameters.
    """
    rows, params = [], []
    for offset, month in enumerate(months):
        rows.append(f"({first_index + offset}, %s, %s)")
        params += [db_datetime(month_start(month)), db_datetime(month_start(add_months(month, 1)))]
    return f"{name}(idx, month_start, month_end) AS (VALUES {', '.join(rows)})", params


def price_factors_cte() -> str | None:
    """`factors(price_id, num, den)`: MRR = period amount × num / den, per recurring licensed price.

    num/den is the cycle's periods per year / 12 (Fraction, exact: a week is 1461/28 per
    year), the same normalisation as `billing.selectors.mrr_for`. Built from the catalogue
    (prices, not subscriptions), so it stays a few rows.
    """
    rows = []
    prices = Price.objects.filter(type=Price.Type.RECURRING, usage_type=Price.UsageType.LICENSED)
    for price_id, cycle in prices.values_list("pk", "cycle"):
        factor = Fraction(cycle_spec(cycle).periods_per_year()) / 12
        rows.append(f"({int(price_id)}, {factor.numerator}, {factor.denominator})")
    if not rows:
        return None
    return f"factors(price_id, num, den) AS (VALUES {', '.join(rows)})"


def invoice_where(filters: ReportFilters, *, invoice: str = "i", line: str | None = "l") -> tuple[str, list[Any]]:
    """The central filters on billed invoices (and their lines, for the plan filter)."""
    clauses = [
        f"{invoice}.status IN ({', '.join(repr(status) for status in BILLED_STATUSES)})",
        f"{invoice}.customer_id NOT IN ({TEST_MODE_CUSTOMERS_SQL})",
    ]
    params: list[Any] = [not filters.livemode]
    if filters.brand:
        clauses.append(f"{invoice}.brand_id = %s")
        params.append(filters.brand)
    if filters.currency:
        clauses.append(f"{invoice}.currency = %s")
        params.append(filters.currency)
    if filters.country:
        clauses.append(f"{invoice}.customer_id IN (SELECT id FROM customers_customer WHERE country = %s)")
        params.append(filters.country)
    if filters.customer:
        clauses.append(f"{invoice}.customer_id = %s")
        params.append(filters.customer)
    if filters.plan and line:
        clauses.append(f"{line}.price_id = %s")
        params.append(filters.plan)
    return " AND ".join(clauses), params


def rounded_mrr_sql() -> str:
    # net × num / den rounded half away from zero with integer arithmetic only (both
    # databases truncate integer division toward zero), as config.money.round_fraction does.
    net = LINE_NET_SQL
    return (
        f"CASE WHEN {net} >= 0 THEN (2 * {net} * f.num + f.den) / (2 * f.den) "
        f"ELSE -((-2 * {net} * f.num + f.den) / (2 * f.den)) END"
    )


def as_month(value: Any) -> date:
    """The reporting month (first day) of a date, a datetime or SQLite's text of one."""
    if isinstance(value, str):  # SQLite gives aggregates of datetimes back as text
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(report_timezone()).date()
    return date(value.year, value.month, 1)
