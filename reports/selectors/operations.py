"""Operations: usage per meter and customer, plan-change history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Max, Min, Q, Sum

from billing.models import SubscriptionChange, UsageEvent
from reports.filters import ReportFilters, add_months, month_start


@dataclass(frozen=True, slots=True)
class UsageRow:
    meter_id: int
    meter: str
    customer_id: int
    customer: str
    events: int
    total: Any  # Decimal: sum of values
    peak: Any  # Decimal: largest single value


def usage_by_meter(*, filters: ReportFilters) -> list[UsageRow]:
    """Usage events reported in the period, per meter and customer (what was reported,
    whatever the aggregation the price bills; billed amounts are on the usage lines)."""
    events = UsageEvent.objects.filter(
        timestamp__gte=month_start(filters.start), timestamp__lt=month_start(add_months(filters.end, 1))
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
