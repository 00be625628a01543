"""Operations: usage per meter and customer, plan-change history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, F, Max, Min, Q, Sum

from billing.models import SubscriptionChange, UsageEvent
from reports.filters import ReportFilters, add_months, month_start
from reports.selectors.common import db_datetime, fetch


@dataclass(frozen=True, slots=True)
class UsageRow:
    meter_id: int
    meter: str
    customer_id: int
    customer: str
    events: int
    total: Any  # Decimal: sum of values
    peak: Any  # Decimal: largest single value


def _utc_day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def usage_by_meter(*, filters: ReportFilters) -> list[UsageRow]:
    """Usage events reported in the period, per meter and customer (what was reported,
    whatever the aggregation the price bills; billed amounts are on the usage lines).

    Issue 20: whole UTC days come from the usage rollups (billing.UsageRollup, written with
    the events in the ingestion's transaction, so as current as the events); raw events only
    fill the period's partial first and last days (months are cut in the reports' time
    zone), as the billing run does. `usage_by_meter_live` is the reference over raw events.
    """
    start, end = month_start(filters.start), month_start(add_months(filters.end, 1))
    first_day = start.astimezone(UTC).date()
    if _utc_day_start(first_day) < start:
        first_day += timedelta(days=1)
    stop_day = end.astimezone(UTC).date()  # rollups for [first_day, stop_day)
    if stop_day < first_day:
        stop_day = first_day
    day = connection.ops.adapt_datefield_value
    # The central filters select customers (and meters, for the plan filter) before the
    # aggregate; names are joined to the aggregated pairs only.
    clauses: list[str] = ["livemode = %s"]
    params: list[Any] = [filters.livemode]
    for column, value in (
        ("brand_id", filters.brand),
        ("currency", filters.currency),
        ("country", filters.country),
        ("id", filters.customer),
    ):
        if value:
            clauses.append(f"{column} = %s")
            params.append(value)
    customers = f"SELECT id FROM customers_customer WHERE {' AND '.join(clauses)}"
    meters = "AND meter_id IN (SELECT meter_id FROM billing_price WHERE id = %s)" if filters.plan else ""
    meter_params = [filters.plan] if filters.plan else []
    rows = fetch(
        f"""
        WITH parts AS (
            SELECT meter_id, customer_id, event_count AS events, value_sum AS total, value_max AS peak
            FROM billing_usagerollup
            WHERE day >= %s AND day < %s AND customer_id IN ({customers}) {meters}
            UNION ALL
            SELECT meter_id, customer_id, 1, value, value
            FROM billing_usageevent
            WHERE ((timestamp >= %s AND timestamp < %s) OR (timestamp >= %s AND timestamp < %s))
              AND customer_id IN ({customers}) {meters}
        ),
        pairs AS (
            SELECT meter_id, customer_id, SUM(events) AS events, SUM(total) AS total, MAX(peak) AS peak
            FROM parts GROUP BY meter_id, customer_id
        )
        SELECT p.meter_id, mt.name, p.customer_id, c.legal_name, p.events, p.total, p.peak
        FROM pairs p
        JOIN billing_meter mt ON mt.id = p.meter_id
        JOIN customers_customer c ON c.id = p.customer_id
        ORDER BY mt.name, p.total DESC, p.customer_id
        """,
        [
            day(first_day),
            day(stop_day),
            *params,
            *meter_params,
            db_datetime(start),
            db_datetime(min(_utc_day_start(first_day), end)),
            db_datetime(max(_utc_day_start(stop_day), start)),
            db_datetime(end),
            *params,
            *meter_params,
        ],
    )
    return [
        UsageRow(
            meter_id=meter_id,
            meter=meter,
            customer_id=customer_id,
            customer=customer,
            events=int(events),
            total=_decimal(total),
            peak=_decimal(peak),
        )
        for meter_id, meter, customer_id, customer, events, total, peak in rows
    ]


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
