"""Operations: usage per meter and customer, plan-change history."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Max, Min, Q, Sum

from billing.models import SubscriptionChange, UsageEvent
from reports.filters import ReportFilters, add_months, month_start
from reports.models import SummaryState, UsageDigestRow
from reports.selectors.common import db_datetime, fetch, fetch_stream


@dataclass(frozen=True, slots=True)
class UsageRow:
    meter_id: int
    meter: str
    customer_id: int
    customer: str
    events: int
    total: Any  # Decimal: sum of values
    peak: Any  # Decimal: largest single value


# The usage report's page lists this many customers per meter (the largest totals first); the
# CSV/XLSX exports and the API list every customer (docs/reports.md).
USAGE_TOP_CUSTOMERS = 50


@dataclass(frozen=True, slots=True)
class UsageMeterTotal:
    meter_id: int
    meter: str
    customers: int  # customers with usage of this meter in the period
    events: int
    total: Any  # Decimal
    peak: Any  # Decimal


@dataclass(frozen=True, slots=True)
class UsageOverview:
    """What the usage report's page shows: per meter totals and its top customers."""

    meters: list[UsageMeterTotal]
    top: list[UsageRow]  # per meter, the `top` largest totals (meter name, total desc, customer id)
    customers: int  # customers with usage of any meter in the period


# The usage digest (reports/usage_digest.py): its SummaryState name and beat entry.
USAGE_DIGEST = "usage-digest"
USAGE_DIGEST_BEAT_ENTRY = "reports-refresh-usage-digest"


def usage_digest_as_of(*, filters: ReportFilters) -> datetime | None:
    """When the digest serving these filters was computed; None when it does not serve them
    (a filter, a period that is not a preset, never refreshed, another reporting time zone)."""
    if filters.brand or filters.currency or filters.country or filters.customer or filters.plan:
        return None
    state = SummaryState.objects.filter(name=USAGE_DIGEST).values("refreshed_at", "timezone").first()
    if state is None or state["refreshed_at"] is None or state["timezone"] != settings.TARIF_REPORTS_TIMEZONE:
        return None
    computed = UsageDigestRow.objects.filter(
        livemode=filters.livemode, start=filters.start, end=filters.end, rank=-1
    ).exists()
    return state["refreshed_at"] if computed else None


def usage_digest_overview(*, filters: ReportFilters) -> UsageOverview | None:
    """`usage_overview` as the digest's last refresh computed it, names as they are now; None
    when the digest does not serve these filters."""
    if usage_digest_as_of(filters=filters) is None:
        return None
    rows = fetch(
        """
        SELECT d.meter_id, mt.name, d.rank, d.customer_id, c.legal_name, d.customers, d.events, d.total, d.peak
        FROM reports_usagedigestrow d
        LEFT JOIN billing_meter mt ON mt.id = d.meter_id
        LEFT JOIN customers_customer c ON c.id = d.customer_id
        WHERE d.livemode = %s AND d.start = %s AND d."end" = %s
        """,
        [
            filters.livemode,
            connection.ops.adapt_datefield_value(filters.start),
            connection.ops.adapt_datefield_value(filters.end),
        ],
    )
    return _overview_from_rows(rows)


def _overview_from_rows(rows: list[tuple]) -> UsageOverview:
    meters: list[UsageMeterTotal] = []
    top_rows: list[UsageRow] = []
    customers = 0
    for meter_id, meter, kind, customer_id, customer, count, events, total, peak in rows:
        if kind == -1:
            customers = int(count or 0)
        elif kind == 0:
            meters.append(UsageMeterTotal(meter_id, meter, int(count), int(events), _decimal(total), _decimal(peak)))
        else:
            top_rows.append(_usage_row(meter_id, meter, customer_id, customer, events, total, peak))
    meters.sort(key=lambda row: (row.meter, row.meter_id))
    top_rows.sort(key=lambda row: (row.meter, row.meter_id, -(row.total or 0), row.customer_id))
    return UsageOverview(meters=meters, top=top_rows, customers=customers)


def _utc_day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _usage_pairs_sql(filters: ReportFilters, *, after: tuple[int, int] | None = None) -> tuple[str, list[Any]]:
    """`pairs(meter_id, customer_id, events, total, peak)`: the period's usage per meter and
    customer, as CTEs. Whole UTC months come from the month rollups (billing.UsageMonthRollup),
    the whole UTC days of the edge months from the daily rollups (billing.UsageRollup), and raw
    events fill the partial first and last days (months are cut in the reports' time zone). All
    three are written with the events in the ingestion's transaction, so as current as the
    events. `after` (meter id, customer id): only the pairs after it, in that order (keyset)."""
    start, end = month_start(filters.start), month_start(add_months(filters.end, 1))
    first_day = start.astimezone(UTC).date()
    if _utc_day_start(first_day) < start:
        first_day += timedelta(days=1)
    stop_day = end.astimezone(UTC).date()  # rollups for [first_day, stop_day)
    if stop_day < first_day:
        stop_day = first_day
    first_month = first_day if first_day.day == 1 else add_months(first_day, 1)
    stop_month = stop_day.replace(day=1)  # month rollups for [first_month, stop_month)
    if stop_month < first_month:
        first_month = stop_month = first_day  # no whole month: days only
    day = connection.ops.adapt_datefield_value
    # The central filters select customers (and meters, for the plan filter) before the
    # aggregate; names are joined to the aggregated pairs only.
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("brand_id", filters.brand),
        ("currency", filters.currency),
        ("country", filters.country),
        ("id", filters.customer),
    ):
        if value:
            clauses.append(f"{column} = %s")
            params.append(value)
    if clauses:
        scope = f"customer_id IN (SELECT id FROM customers_customer WHERE livemode = %s AND {' AND '.join(clauses)})"
        params.insert(0, filters.livemode)
    else:
        # The mode alone, through the short list of test customers (production's): live mode
        # leaves them out, test mode keeps only them; never a join with every live customer.
        test_customers = "(SELECT id FROM customers_customer WHERE NOT livemode)"
        scope = f"customer_id {'NOT IN' if filters.livemode else 'IN'} {test_customers}"
    if filters.plan:
        scope += " AND meter_id IN (SELECT meter_id FROM billing_price WHERE id = %s)"
        params.append(filters.plan)
    if after is not None:
        scope += " AND (meter_id > %s OR (meter_id = %s AND customer_id > %s))"
        params += [after[0], after[0], after[1]]
    sql = f"""
        parts AS (
            SELECT meter_id, customer_id, event_count AS events, value_sum AS total, value_max AS peak
            FROM billing_usagemonthrollup
            WHERE month >= %s AND month < %s AND {scope}
            UNION ALL
            SELECT meter_id, customer_id, event_count, value_sum, value_max
            FROM billing_usagerollup
            WHERE ((day >= %s AND day < %s) OR (day >= %s AND day < %s)) AND {scope}
            UNION ALL
            SELECT meter_id, customer_id, 1, value, value
            FROM billing_usageevent
            WHERE ((timestamp >= %s AND timestamp < %s) OR (timestamp >= %s AND timestamp < %s)) AND {scope}
        ),
        pairs AS (
            SELECT meter_id, customer_id, SUM(events) AS events, SUM(total) AS total, MAX(peak) AS peak
            FROM parts GROUP BY meter_id, customer_id
        )"""
    return sql, [
        day(first_month),
        day(stop_month),
        *params,
        day(first_day),
        day(first_month),
        day(stop_month),
        day(stop_day),
        *params,
        db_datetime(start),
        db_datetime(min(_utc_day_start(first_day), end)),
        db_datetime(max(_utc_day_start(stop_day), start)),
        db_datetime(end),
        *params,
    ]


def _usage_row(
    meter_id: int, meter: str, customer_id: int, customer: str, events: Any, total: Any, peak: Any
) -> UsageRow:
    return UsageRow(
        meter_id=meter_id,
        meter=meter,
        customer_id=customer_id,
        customer=customer,
        events=int(events),
        total=_decimal(total),
        peak=_decimal(peak),
    )


_USAGE_ROWS = """
    SELECT p.meter_id, mt.name, p.customer_id, c.legal_name, p.events, p.total, p.peak
    FROM pairs p
    JOIN billing_meter mt ON mt.id = p.meter_id
    JOIN customers_customer c ON c.id = p.customer_id
"""


def usage_by_meter(*, filters: ReportFilters) -> list[UsageRow]:
    """Usage events reported in the period, per meter and customer (what was reported,
    whatever the aggregation the price bills; billed amounts are on the usage lines), by meter
    name then largest total. One row per customer and meter: a million at a million
    customers, so screens use `usage_overview` and files `usage_by_meter_stream`.
    `usage_by_meter_live` is the reference over raw events."""
    pairs, params = _usage_pairs_sql(filters)
    rows = fetch(f"WITH {pairs} {_USAGE_ROWS} ORDER BY mt.name, p.total DESC, p.customer_id", params)
    return [_usage_row(*row) for row in rows]


def usage_by_meter_stream(*, filters: ReportFilters, chunk: int = 2_000) -> Iterator[UsageRow]:
    """`usage_by_meter`'s rows, fetched `chunk` at a time from a server-side cursor on
    PostgreSQL (the exports' memory stays bounded whatever the number of customers)."""
    pairs, params = _usage_pairs_sql(filters)
    return (
        _usage_row(*row)
        for row in fetch_stream(
            f"WITH {pairs} {_USAGE_ROWS} ORDER BY mt.name, p.total DESC, p.customer_id", params, chunk=chunk
        )
    )


def usage_by_meter_page(*, filters: ReportFilters, after: tuple[int, int] | None, limit: int) -> list[UsageRow]:
    """`limit` rows of the per-customer list in (meter id, customer id) order, after the
    keyset `after` (the API's pages: each page reads only the pairs after its cursor)."""
    pairs, params = _usage_pairs_sql(filters, after=after)
    rows = fetch(f"WITH {pairs} {_USAGE_ROWS} ORDER BY p.meter_id, p.customer_id LIMIT %s", [*params, limit])
    return [_usage_row(*row) for row in rows]


def usage_overview(*, filters: ReportFilters, top: int | None = None) -> UsageOverview:
    """Per meter totals (customers, events, total, peak) and each meter's `top` customers by
    total, in one statement: only meters × (top + 1) rows leave the database."""
    top = USAGE_TOP_CUSTOMERS if top is None else top
    pairs, params = _usage_pairs_sql(filters)
    rows = fetch(
        f"""
        WITH {pairs},
        meters AS (
            SELECT meter_id, COUNT(*) AS customers, SUM(events) AS events, SUM(total) AS total, MAX(peak) AS peak
            FROM pairs GROUP BY meter_id
        )
        SELECT m.meter_id, mt.name, 0, CAST(NULL AS bigint), CAST(NULL AS text), m.customers, m.events, m.total, m.peak
        FROM meters m JOIN billing_meter mt ON mt.id = m.meter_id
        UNION ALL
        SELECT NULL, NULL, -1, NULL, NULL, (SELECT COUNT(DISTINCT customer_id) FROM pairs), 0, NULL, NULL
        UNION ALL
        SELECT m.meter_id, mt.name, 1, t.customer_id, c.legal_name, NULL, t.events, t.total, t.peak
        FROM meters m
        JOIN billing_meter mt ON mt.id = m.meter_id
        CROSS JOIN LATERAL (
            SELECT customer_id, events, total, peak FROM pairs
            WHERE pairs.meter_id = m.meter_id ORDER BY total DESC, customer_id LIMIT %s
        ) t
        JOIN customers_customer c ON c.id = t.customer_id
        """,
        [*params, top],
    )
    return _overview_from_rows(rows)


def _decimal(value: Any) -> Decimal | None:
    # SQLite gives raw aggregates of decimal columns back as int or float: the ORM's type.
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value)).quantize(Decimal("0.000001"))


def usage_by_meter_live(*, filters: ReportFilters) -> list[UsageRow]:
    """`usage_by_meter` over the raw events only (the reference the rollup read is tested against)."""
    events = UsageEvent.objects.filter(
        timestamp__gte=month_start(filters.start),
        timestamp__lt=month_start(add_months(filters.end, 1)),
        customer__livemode=filters.livemode,
    )
    if filters.brand:
        events = events.filter(customer__brand_id=filters.brand)
    if filters.currency:
        events = events.filter(customer__currency=filters.currency)
    if filters.country:
        events = events.filter(customer__country=filters.country)
    if filters.plan:
        events = events.filter(meter__prices__pk=filters.plan)
    if filters.customer:
        events = events.filter(customer_id=filters.customer)
    rows = (
        events.values("meter_id", "meter__name", "customer_id", "customer__legal_name")
        .annotate(events=Count("pk"), total=Sum("value"), peak=Max("value"))
        .order_by("meter__name", "-total", "customer_id")
    )
    return [
        UsageRow(
            meter_id=row["meter_id"],
            meter=row["meter__name"],
            customer_id=row["customer_id"],
            customer=row["customer__legal_name"],
            events=row["events"],
            total=row["total"],
            peak=row["peak"],
        )
        for row in rows
    ]


# -- Plan changes and the customer timeline --------------------------------------------

PLAN_CHANGE_KINDS = (SubscriptionChange.Kind.CHANGE, SubscriptionChange.Kind.SCHEDULED)


@dataclass(frozen=True, slots=True)
class PlanChangeRow:
    customer_id: int
    customer: str
    currency: str
    changes: int
    upgrades: int
    downgrades: int
    first_change: datetime
    last_change: datetime
    mrr_change: int  # sum of (MRR after - MRR before) over the changes


def plan_change_history(*, filters: ReportFilters, min_changes: int = 1) -> list[PlanChangeRow]:
    """Customers by number of plan or quantity changes in the period, most changes first."""
    changes = SubscriptionChange.objects.filter(
        kind__in=PLAN_CHANGE_KINDS,
        effective_at__gte=month_start(filters.start),
        effective_at__lt=month_start(add_months(filters.end, 1)),
    )
    if filters.brand:
        changes = changes.filter(subscription__customer__brand_id=filters.brand)
    if filters.currency:
        changes = changes.filter(subscription__currency=filters.currency)
    if filters.country:
        changes = changes.filter(subscription__customer__country=filters.country)
    if filters.plan:
        changes = changes.filter(subscription__items__price_id=filters.plan)
    if filters.customer:
        changes = changes.filter(subscription__customer_id=filters.customer)
    rows = (
        changes.values("subscription__customer_id", "subscription__customer__legal_name", "subscription__currency")
        .annotate(
            changes=Count("pk", distinct=True),
            upgrades=Count("pk", filter=Q(mrr_after__gt=F("mrr_before")), distinct=True),
            downgrades=Count("pk", filter=Q(mrr_after__lt=F("mrr_before")), distinct=True),
            first_change=Min("effective_at"),
            last_change=Max("effective_at"),
            mrr_change=Sum(F("mrr_after") - F("mrr_before")),
        )
        .filter(changes__gte=min_changes)
        .order_by("-changes", "subscription__customer__legal_name")
    )
    return [
        PlanChangeRow(
            customer_id=row["subscription__customer_id"],
            customer=row["subscription__customer__legal_name"],
            currency=row["subscription__currency"],
            changes=row["changes"],
            upgrades=row["upgrades"],
            downgrades=row["downgrades"],
            first_change=row["first_change"],
            last_change=row["last_change"],
            mrr_change=int(row["mrr_change"] or 0),
        )
        for row in rows
    ]
