"""Payments: success rate by method and gateway, decline reasons, dunning recovery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, Q, QuerySet, Sum

from billing.models import DunningCase, Payment
from reports.filters import ReportFilters, add_months, month_start
from reports.selectors.common import fetch
from reports.selectors.summaries import PAYMENTS, TABLES, month_index, summary_serves, summary_where


def _payments(filters: ReportFilters) -> QuerySet[Payment]:
    payments = Payment.objects.filter(
        customer__livemode=filters.livemode,
        attempted_at__gte=month_start(filters.start),
        attempted_at__lt=month_start(add_months(filters.end, 1)),
    )
    if filters.brand:
        payments = payments.filter(invoice__brand_id=filters.brand)
    if filters.currency:
        payments = payments.filter(currency=filters.currency)
    if filters.country:
        payments = payments.filter(customer__country=filters.country)
    if filters.plan:
        payments = payments.filter(invoice__lines__price_id=filters.plan).distinct()
    if filters.customer:
        payments = payments.filter(customer_id=filters.customer)
    return payments


@dataclass(frozen=True, slots=True)
class PaymentRateRow:
    method: str
    gateway: str
    currency: str
    attempts: int
    succeeded: int
    failed: int
    amount_succeeded: int

    @property
    def success_rate(self) -> Fraction | None:
        settled = self.succeeded + self.failed
        return Fraction(self.succeeded, settled) if settled else None


def _summary_read(filters: ReportFilters, *, select: str, group: str, order: str, failed: bool = False) -> list[tuple]:
    where, params = summary_where(filters)
    status = f"AND status = '{Payment.Status.FAILED}'" if failed else ""
    return fetch(
        f"SELECT {select} FROM {TABLES[PAYMENTS]} WHERE {where} {status} AND month BETWEEN %s AND %s "
        f"GROUP BY {group} ORDER BY {order}",
        [*params, month_index(filters.start), month_index(filters.end)],
    )


def payment_success(*, filters: ReportFilters) -> list[PaymentRateRow]:
    """Attempts in the period by method and gateway; the rate counts settled attempts only
    (from the payment summary when it is built and the filters fit its grain, else live)."""
    if not summary_serves(name=PAYMENTS, filters=filters):
        return payment_success_live(filters=filters)
    succeeded, failed = Payment.Status.SUCCEEDED, Payment.Status.FAILED
    rows = _summary_read(
        filters,
        select=(
            "method, gateway, currency, SUM(attempts), "
            f"SUM(CASE WHEN status = '{succeeded}' THEN attempts ELSE 0 END), "
            f"SUM(CASE WHEN status = '{failed}' THEN attempts ELSE 0 END), "
            f"SUM(CASE WHEN status = '{succeeded}' THEN amount ELSE 0 END)"
        ),
        group="method, gateway, currency",
        order="method, gateway, currency",
    )
    return [
        PaymentRateRow(
            method=method,
            gateway=gateway,
            currency=currency,
            attempts=int(attempts),
            succeeded=int(succeeded_count),
            failed=int(failed_count),
            amount_succeeded=int(amount or 0),
        )
        for method, gateway, currency, attempts, succeeded_count, failed_count, amount in rows
    ]


def payment_success_live(*, filters: ReportFilters) -> list[PaymentRateRow]:
    """`payment_success` computed from the payments at the read (the summary's reference)."""
    rows = (
        _payments(filters)
        .values("method", "gateway", "currency")
        .annotate(
            attempts=Count("pk"),
            succeeded=Count("pk", filter=Q(status=Payment.Status.SUCCEEDED)),
            failed=Count("pk", filter=Q(status=Payment.Status.FAILED)),
            amount_succeeded=Sum("amount", filter=Q(status=Payment.Status.SUCCEEDED)),
        )
        .order_by("method", "gateway", "currency")
    )
    return [
        PaymentRateRow(
            method=row["method"],
            gateway=row["gateway"],
            currency=row["currency"],
            attempts=row["attempts"],
            succeeded=row["succeeded"],
            failed=row["failed"],
            amount_succeeded=int(row["amount_succeeded"] or 0),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class DeclineRow:
    decline_code: str
    method: str
    failures: int
    amount: int
    currency: str


def decline_reasons(*, filters: ReportFilters) -> list[DeclineRow]:
    """Failed attempts in the period by decline code and method (from the payment summary when
    it serves the filters, else live)."""
    if not summary_serves(name=PAYMENTS, filters=filters):
        return decline_reasons_live(filters=filters)
    rows = _summary_read(
        filters,
        select="decline_code, method, currency, SUM(attempts), SUM(amount)",
        group="decline_code, method, currency",
        order="SUM(attempts) DESC, decline_code, method, currency",
        failed=True,
    )
    return [
        DeclineRow(
            decline_code=decline_code or "unknown",
            method=method,
            failures=int(failures),
            amount=int(amount or 0),
            currency=currency,
        )
        for decline_code, method, currency, failures, amount in rows
    ]


def decline_reasons_live(*, filters: ReportFilters) -> list[DeclineRow]:
    """`decline_reasons` computed from the payments at the read (the summary's reference)."""
    rows = (
        _payments(filters)
        .filter(status=Payment.Status.FAILED)
        .values("decline_code", "method", "currency")
        .annotate(failures=Count("pk"), amount=Sum("amount"))
        .order_by("-failures", "decline_code", "method", "currency")
    )
    return [
        DeclineRow(
            decline_code=row["decline_code"] or "unknown",
            method=row["method"],
            failures=row["failures"],
            amount=int(row["amount"] or 0),
            currency=row["currency"],
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class DunningRow:
    currency: str
    cases: int
    recovered: int
    exhausted: int
    closed: int
    active: int
    recovered_amount: int
    average_time_to_recover: timedelta | None
    longest_time_to_recover: timedelta | None

    @property
    def recovery_rate(self) -> Fraction | None:
        """Recovered cases among those that ended by recovery or the final action."""
        concluded = self.recovered + self.exhausted
        return Fraction(self.recovered, concluded) if concluded else None


def dunning_recovery(*, filters: ReportFilters) -> list[DunningRow]:
    """Dunning cases opened in the period: how many were recovered and how fast."""
    cases = DunningCase.objects.filter(
        started_at__gte=month_start(filters.start), started_at__lt=month_start(add_months(filters.end, 1))
    )
    if filters.brand:
        cases = cases.filter(invoice__brand_id=filters.brand)
    if filters.currency:
        cases = cases.filter(invoice__currency=filters.currency)
    if filters.country:
        cases = cases.filter(customer__country=filters.country)
    if filters.plan:
        cases = cases.filter(invoice__lines__price_id=filters.plan).distinct()
    recovered = Q(status=DunningCase.Status.RECOVERED)
    time_to_recover = ExpressionWrapper(F("closed_at") - F("started_at"), output_field=DurationField())
    rows = (
        cases.values("invoice__currency")
        .annotate(
            cases=Count("pk"),
            recovered=Count("pk", filter=recovered),
            exhausted=Count("pk", filter=Q(status=DunningCase.Status.EXHAUSTED)),
            closed=Count("pk", filter=Q(status=DunningCase.Status.CLOSED)),
            active=Count("pk", filter=Q(status=DunningCase.Status.ACTIVE)),
            recovered_amount=Sum("invoice__amount_due", filter=recovered),
            average=Avg(time_to_recover, filter=recovered & Q(closed_at__isnull=False)),
            longest=Max(time_to_recover, filter=recovered & Q(closed_at__isnull=False)),
        )
        .order_by("invoice__currency")
    )
    return [
        DunningRow(
            currency=row["invoice__currency"],
            cases=row["cases"],
            recovered=row["recovered"],
            exhausted=row["exhausted"],
            closed=row["closed"],
            active=row["active"],
            recovered_amount=int(row["recovered_amount"] or 0),
            average_time_to_recover=row["average"],
            longest_time_to_recover=row["longest"],
        )
        for row in rows
    ]
