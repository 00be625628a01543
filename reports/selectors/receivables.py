"""Receivables: AR aging, days sales outstanding, invoices by status."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce

from config import clock
from invoices.models import Invoice
from reports.filters import ReportFilters, add_months, month_start
from reports.selectors.common import BILLED_STATUSES, as_month, fetch
from reports.selectors.summaries import (
    INVOICE_STATUS,
    RECEIVABLES,
    TABLES,
    month_index,
    summary_serves,
    summary_status,
    summary_where,
)

AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")


@dataclass(frozen=True, slots=True)
class AgingRow:
    currency: str
    bucket: str
    invoices: int
    amount: int


def _invoices(filters: ReportFilters) -> QuerySet[Invoice]:
    invoices = Invoice.objects.filter(customer__livemode=filters.livemode)
    if filters.brand:
        invoices = invoices.filter(brand_id=filters.brand)
    if filters.currency:
        invoices = invoices.filter(currency=filters.currency)
    if filters.country:
        invoices = invoices.filter(customer__country=filters.country)
    if filters.plan:
        invoices = invoices.filter(lines__price_id=filters.plan).distinct()
    if filters.customer:
        invoices = invoices.filter(customer_id=filters.customer)
    return invoices


def period_end_instant(filters: ReportFilters) -> datetime:
    """The end of the period (first instant after its last month), or now if that is earlier."""
    return min(month_start(add_months(filters.end, 1)), clock.system_now())


def ar_aging(*, filters: ReportFilters, as_of: datetime | None = None) -> list[AgingRow]:
    """What customers owe at the period end (or now), by days past the due date: from the
    receivables summary when it is built and the filters fit its grain (figures at the period
    end, or at the summary's last refresh if that is earlier), else live (`ar_aging_live`)."""
    if as_of is None and summary_serves(name=RECEIVABLES, filters=filters):
        month, _as_of = _receivables_month(filters)
        return _aging_rows([row for row in _receivables_read(filters, month=month) if row[1] != "billed"])
    return ar_aging_live(filters=filters, as_of=as_of)


def _receivables_month(filters: ReportFilters) -> tuple[int, datetime]:
    """The receivables summary's month that describes the period end, and the instant it
    describes: the row of month m holds what was owed at m's end, or at the refresh for the
    month the last refresh ran in (reports/summaries.py)."""
    refreshed_at = summary_status(name=RECEIVABLES).refreshed_at
    assert refreshed_at is not None  # summary_serves: built
    period_end = month_start(add_months(filters.end, 1))
    if period_end <= refreshed_at:
        return month_index(filters.end), period_end
    return month_index(as_month(refreshed_at)), refreshed_at


def _receivables_read(filters: ReportFilters, *, month: int, billed_from: int | None = None) -> list[tuple]:
    """(currency, kind, invoices, amount): the aging buckets of `month`, and with `billed_from`
    the invoices issued from that month to `month` (kind "billed"), in one statement."""
    where, params = summary_where(filters)
    billed = "OR (kind = 'billed' AND month BETWEEN %s AND %s)" if billed_from is not None else ""
    return fetch(
        f"SELECT currency, kind, SUM(invoices), SUM(amount) FROM {TABLES[RECEIVABLES]} "
        f"WHERE {where} AND ((kind <> 'billed' AND month = %s) {billed}) GROUP BY currency, kind",
        [*params, month, *((billed_from, month) if billed_from is not None else ())],
    )


def _aging_rows(rows: list[tuple]) -> list[AgingRow]:
    found = {(currency, bucket): (int(invoices), int(amount or 0)) for currency, bucket, invoices, amount in rows}
    return [
        AgingRow(
            currency=currency,
            bucket=bucket,
            invoices=found.get((currency, bucket), (0, 0))[0],
            amount=found.get((currency, bucket), (0, 0))[1],
        )
        for currency in sorted({currency for currency, _bucket in found})
        for bucket in AGING_BUCKETS
    ]


def ar_aging_live(*, filters: ReportFilters, as_of: datetime | None = None) -> list[AgingRow]:
    """What customers owe at `as_of` (default: the period end), by days past the due date.

    An invoice counts if it was finalized by then and neither paid, voided nor written
    off by then; its amount is what remains to pay (partial payments are taken at
    their current state). Invoices without a due date are due when finalized.
    """
    as_of = as_of or period_end_instant(filters)
    outstanding = (
        _invoices(filters)
        .filter(finalized_at__lte=as_of)
        .exclude(status=Invoice.Status.DRAFT)
        .filter(Q(paid_at__isnull=True) | Q(paid_at__gt=as_of))
        .filter(Q(voided_at__isnull=True) | Q(voided_at__gt=as_of))
        .exclude(status=Invoice.Status.UNCOLLECTIBLE)
        .annotate(due=Coalesce("due_at", "finalized_at"))
        .annotate(
            owed=Case(
                When(status=Invoice.Status.OPEN, then=F("amount_remaining")),
                default=F("amount_due"),
                output_field=IntegerField(),
            ),
            bucket=Case(
                When(due__gte=as_of, then=Value("current")),
                When(due__gte=as_of - timedelta(days=30), then=Value("1-30")),
                When(due__gte=as_of - timedelta(days=60), then=Value("31-60")),
                When(due__gte=as_of - timedelta(days=90), then=Value("61-90")),
                default=Value("90+"),
            ),
        )
        .filter(owed__gt=0)
        .values("currency", "bucket")
        .annotate(invoices=Count("pk"), amount=Sum("owed"))
        .order_by()
    )
    found = {(row["currency"], row["bucket"]): row for row in outstanding}
    return [
        AgingRow(
            currency=currency,
            bucket=bucket,
            invoices=found.get((currency, bucket), {}).get("invoices", 0),
            amount=int(found.get((currency, bucket), {}).get("amount", 0) or 0),
        )
        for currency in sorted({currency for currency, _bucket in found})
        for bucket in AGING_BUCKETS
    ]


@dataclass(frozen=True, slots=True)
class DsoRow:
    currency: str
    receivables: int  # outstanding at the period end
    billed: int  # invoice totals finalized in the period
    days: int  # days in the period
    dso: Fraction | None  # receivables / billed × days


def days_sales_outstanding(*, filters: ReportFilters) -> list[DsoRow]:
    """Receivables at the period end ÷ invoice totals issued in the period × its days: from the
    receivables summary when it serves the filters (the period ending at its last refresh if
    that is earlier), else live."""
    if not summary_serves(name=RECEIVABLES, filters=filters):
        return days_sales_outstanding_live(filters=filters)
    month, as_of = _receivables_month(filters)
    receivables: dict[str, int] = defaultdict(int)
    billed: dict[str, int] = {}
    for currency, kind, _count, amount in _receivables_read(
        filters, month=month, billed_from=month_index(filters.start)
    ):
        if kind == "billed":
            billed[currency] = int(amount or 0)
        else:
            receivables[currency] += int(amount or 0)
    return _dso_rows(receivables, billed, days=max(1, (as_of - month_start(filters.start)).days))


def _dso_rows(receivables: dict[str, int], billed: dict[str, int], *, days: int) -> list[DsoRow]:
    return [
        DsoRow(
            currency=currency,
            receivables=receivables.get(currency, 0),
            billed=billed.get(currency, 0),
            days=days,
            dso=Fraction(receivables.get(currency, 0) * days, billed[currency]) if billed.get(currency) else None,
        )
        for currency in sorted(set(receivables) | set(billed))
    ]


def days_sales_outstanding_live(*, filters: ReportFilters) -> list[DsoRow]:
    """`days_sales_outstanding` computed from the invoices at the read (the summary's reference)."""
    as_of = period_end_instant(filters)
    begins = month_start(filters.start)
    days = max(1, (as_of - begins).days)
    receivables: dict[str, int] = defaultdict(int)
    for row in ar_aging_live(filters=filters, as_of=as_of):
        receivables[row.currency] += row.amount
    billed = {
        currency: int(total or 0)
        for currency, total in _invoices(filters)
        .filter(status__in=BILLED_STATUSES, finalized_at__gte=begins, finalized_at__lt=as_of)
        .values_list("currency")
        .annotate(Sum("total"))
        .order_by()
    }
    return _dso_rows(receivables, billed, days=days)


@dataclass(frozen=True, slots=True)
class StatusRow:
    currency: str
    status: str
    invoices: int
    total: int
    amount_remaining: int


def invoices_by_status(*, filters: ReportFilters) -> list[StatusRow]:
    """Invoices issued in the period (drafts: created in it), by their status now (from the
    month summary when it is built and the filters fit its grain, else live)."""
    if summary_serves(name=INVOICE_STATUS, filters=filters):
        where, params = summary_where(filters)
        rows = fetch(
            f"SELECT currency, status, SUM(invoices), SUM(total), SUM(amount_remaining) FROM {TABLES[INVOICE_STATUS]} "
            f"WHERE {where} AND month BETWEEN %s AND %s GROUP BY currency, status ORDER BY currency, status",
            [*params, month_index(filters.start), month_index(filters.end)],
        )
        return [
            StatusRow(
                currency=currency,
                status=status,
                invoices=int(invoices),
                total=int(total or 0),
                amount_remaining=int(remaining or 0),
            )
            for currency, status, invoices, total, remaining in rows
        ]
    return invoices_by_status_live(filters=filters)


def invoices_by_status_live(*, filters: ReportFilters) -> list[StatusRow]:
    """`invoices_by_status` computed from the invoices at the read (the summary's reference)."""
    rows = (
        _invoices(filters)
        .annotate(dated=Coalesce("finalized_at", "created_at"))
        .filter(dated__gte=month_start(filters.start), dated__lt=month_start(add_months(filters.end, 1)))
        .values("currency", "status")
        .annotate(invoices=Count("pk"), total=Sum("total"), remaining=Sum("amount_remaining"))
        .order_by("currency", "status")
    )
    return [
        StatusRow(
            currency=row["currency"],
            status=row["status"],
            invoices=row["invoices"],
            total=int(row["total"] or 0),
            amount_remaining=int(row["remaining"] or 0),
        )
        for row in rows
    ]
