"""Operational figures read from the database: billing runs, delivery and cash KPIs.

In the console (a request with a mode) the figures are those of the mode the staff member
looks at: live runs and invoices on the wall clock, or test-clock runs and invoices on their
clocks' simulated time, never a mix (`scope_to_mode`; outside a request, e.g. the
Prometheus collector, nothing is scoped)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Min, Model, Q, QuerySet
from django.utils import timezone

from billing.models import BillingRun, Payment, WebhookDelivery
from config.modes import scope_to_mode
from customers.models import NotificationLog
from invoices.models import Invoice


@dataclass(frozen=True)
class BillingRunFigures:
    pk: int
    started_at: datetime
    status: str
    duration_seconds: float | None
    invoices_created: int
    processed: int
    failures: int

    @property
    def invoices_per_second(self) -> float | None:
        if not self.duration_seconds:
            return None
        return self.invoices_created / self.duration_seconds


def billing_runs_recent(*, limit: int = 20) -> list[BillingRunFigures]:
    runs = scope_to_mode(BillingRun.objects.all()).order_by("-started_at", "-pk")[:limit]
    return [
        BillingRunFigures(
            pk=run.pk,
            started_at=run.started_at,
            status=run.status,
            duration_seconds=(run.finished_at - run.started_at).total_seconds() if run.finished_at else None,
            invoices_created=run.invoices_created,
            processed=run.processed,
            failures=run.failures,
        )
        for run in runs
    ]


def _average_seconds(queryset: QuerySet[Model], start: str, end: str) -> float | None:
    value = queryset.annotate(delay=ExpressionWrapper(F(end) - F(start), output_field=DurationField())).aggregate(
        average=Avg("delay")
    )["average"]
    return value.total_seconds() if value is not None else None


def seconds_period_end_to_invoice(*, since: datetime) -> float | None:
    """Average time from the end of a subscription's period to the finalization of its renewal
    invoice. A renewal invoice bills the period that starts at that boundary (in advance, with
    the usage of the period just ended in arrears): its `period_start` is the boundary, its
    `period_end` the next one, a whole period after the invoice (measuring from it gave
    "-744 h" for a monthly plan and "-8760 h" for a yearly one)."""
    invoices = scope_to_mode(Invoice.objects.all()).filter(
        billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE, finalized_at__gte=since, period_start__isnull=False
    )
    return _average_seconds(invoices, "period_start", "finalized_at")


def seconds_invoice_to_cash(*, since: datetime) -> float | None:
    """Average time from an invoice's finalization to its payment (paid invoices with money due)."""
    invoices = scope_to_mode(Invoice.objects.all()).filter(
        status=Invoice.Status.PAID, finalized_at__gte=since, paid_at__isnull=False, amount_due__gt=0
    )
    return _average_seconds(invoices, "finalized_at", "paid_at")


def payment_success_rate(*, since: datetime) -> tuple[float | None, int]:
    """Share of settled automatic payment attempts that succeeded, and how many were settled."""
    counts = (
        scope_to_mode(Payment.objects.all())
        .filter(attempted_at__gte=since, attempt__isnull=False)
        .aggregate(
            succeeded=Count("pk", filter=Q(status=Payment.Status.SUCCEEDED)),
            settled=Count("pk", filter=Q(status__in=[Payment.Status.SUCCEEDED, Payment.Status.FAILED])),
        )
    )
    if not counts["settled"]:
        return None, 0
    return counts["succeeded"] / counts["settled"], counts["settled"]


def kpi_window_start(days: int = 30) -> datetime:
    return timezone.now() - timedelta(days=days)


@dataclass(frozen=True)
class DeliveryLag:
    """How far behind a delivery channel is: its oldest waiting item, and its recent pace."""

    pending: int
    oldest_pending_seconds: float | None
    average_seconds: float | None  # created → delivered, deliveries of the window
    delivered: int


def _delivery_lag(
    queryset: QuerySet[Model], *, pending_status: str, done_status: str, done_at: str, since: datetime
) -> DeliveryLag:
    now = timezone.now()
    waiting = queryset.filter(status=pending_status).aggregate(count=Count("pk"), oldest=Min("created_at"))
    done = queryset.filter(status=done_status, **{f"{done_at}__gte": since, f"{done_at}__isnull": False})
    return DeliveryLag(
        pending=waiting["count"],
        oldest_pending_seconds=(now - waiting["oldest"]).total_seconds() if waiting["oldest"] else None,
        average_seconds=_average_seconds(done, "created_at", done_at),
        delivered=done.count(),
    )


def webhook_delivery_lag(*, since: datetime) -> DeliveryLag:
    """Webhook deliveries (billing.WebhookDelivery): retries included, a delivery's lag runs
    from its creation to the attempt that succeeded."""
    return _delivery_lag(
        scope_to_mode(WebhookDelivery.objects.all()),
        pending_status=WebhookDelivery.Status.PENDING,
        done_status=WebhookDelivery.Status.SUCCEEDED,
        done_at="delivered_at",
        since=since,
    )


def email_delivery_lag(*, since: datetime) -> DeliveryLag:
    """Customer notification emails (customers.NotificationLog), from queued to sent."""
    return _delivery_lag(
        NotificationLog.objects.all(),
        pending_status=NotificationLog.Status.PENDING,
        done_status=NotificationLog.Status.SENT,
        done_at="sent_at",
        since=since,
    )
