"""The customer timeline: every event of one customer, merged from per-source selectors
(subscription changes, invoices, payments, dunning, credit notes, the rest of the event
log, notifications sent, survey answers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.db.models.functions import Coalesce

from billing.models import DunningCase, Payment, Price, SubscriptionChange
from config.events.models import DomainEvent
from customers.models import NotificationLog
from feedback.models import SurveyResponse
from invoices.models import CreditNote, Invoice


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    source: str  # "subscription", "invoice", "payment", ...
    kind: str  # the source's own kind or status
    summary: str
    amount: int | None = None
    currency: str | None = None
    reference: str = ""
    details: dict[str, Any] = field(default_factory=dict)


TimelineSource = Callable[..., list[TimelineEntry]]
TIMELINE_SOURCES: dict[str, TimelineSource] = {}


def timeline_source(name: str) -> Callable[[TimelineSource], TimelineSource]:
    """Register a source of customer timeline entries: `fn(*, customer_id, start, end)`.

    Other apps (notifications, surveys) add theirs with this decorator in their
    AppConfig.ready(); each source is one query over its own table.
    """

    def register(function: TimelineSource) -> TimelineSource:
        TIMELINE_SOURCES[name] = function
        return function

    return register


def customer_timeline(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    """Every event of one customer in [start, end), oldest first: the union of all sources."""
    entries: list[TimelineEntry] = []
    for source in TIMELINE_SOURCES.values():
        entries.extend(source(customer_id=customer_id, start=start, end=end))
    return sorted(entries, key=lambda entry: (entry.at, entry.source, entry.reference))


def _plan_label(items: list[dict[str, int]], labels: dict[int, str]) -> str:
    return ", ".join(
        f"{labels.get(item.get('price', 0), '#' + str(item.get('price')))}"  # ids start at 1: 0 is never a label
        + (f" × {item['quantity']}" if item.get("quantity", 1) != 1 else "")
        for item in items
    )


@timeline_source("subscription")
def _subscription_changes(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    changes = list(
        SubscriptionChange.objects.filter(
            subscription__customer_id=customer_id, effective_at__gte=start, effective_at__lt=end
        )
        .select_related("subscription")
        .order_by("effective_at", "pk")
    )
    price_ids = {item.get("price") for change in changes for item in (*change.items_before, *change.items_after)}
    labels = {
        price.pk: price.nickname or price.product.name
        for price in Price.objects.filter(pk__in=price_ids).select_related("product")
    }
    return [
        TimelineEntry(
            at=change.effective_at,
            source="subscription",
            kind=change.kind,
            summary=change.get_kind_display(),
            amount=change.mrr_after - change.mrr_before,
            currency=change.subscription.currency,
            reference=f"#{change.subscription_id}",
            details={
                "from_plan": _plan_label(change.items_before, labels),
                "to_plan": _plan_label(change.items_after, labels),
                "mrr_before": change.mrr_before,
                "mrr_after": change.mrr_after,
                "proration_amount": change.proration_amount,
            },
        )
        for change in changes
    ]


@timeline_source("invoice")
def _invoices_issued(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    rows = Invoice.objects.filter(customer_id=customer_id, finalized_at__gte=start, finalized_at__lt=end).values(
        "number", "status", "billing_reason", "total", "currency", "finalized_at", "paid_at"
    )
    return [
        TimelineEntry(
            at=row["finalized_at"],
            source="invoice",
            kind=row["status"],
            summary=row["billing_reason"],
            amount=row["total"],
            currency=row["currency"],
            reference=row["number"] or "",
            details={"paid_at": row["paid_at"]},
        )
        for row in rows
    ]


@timeline_source("payment")
def _payments_attempted(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    rows = Payment.objects.filter(customer_id=customer_id, attempted_at__gte=start, attempted_at__lt=end).values(
        "status", "method", "gateway", "amount", "currency", "attempted_at", "decline_code", "invoice__number"
    )
    return [
        TimelineEntry(
            at=row["attempted_at"],
            source="payment",
            kind=row["status"],
            summary=row["method"],
            amount=row["amount"],
            currency=row["currency"],
            reference=row["invoice__number"] or "",
            details={"gateway": row["gateway"], "decline_code": row["decline_code"]},
        )
        for row in rows
    ]


@timeline_source("dunning")
def _dunning_cases(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    rows = DunningCase.objects.filter(customer_id=customer_id, started_at__gte=start, started_at__lt=end).values(
        "status",
        "started_at",
        "closed_at",
        "retries_done",
        "final_action",
        "invoice__number",
        "invoice__amount_due",
        "invoice__currency",
    )
    return [
        TimelineEntry(
            at=row["started_at"],
            source="dunning",
            kind=row["status"],
            summary=row["final_action"],
            amount=row["invoice__amount_due"],
            currency=row["invoice__currency"],
            reference=row["invoice__number"] or "",
            details={"retries_done": row["retries_done"], "closed_at": row["closed_at"]},
        )
        for row in rows
    ]


@timeline_source("credit_note")
def _credit_notes(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    rows = CreditNote.objects.filter(customer_id=customer_id, issued_at__gte=start, issued_at__lt=end).values(
        "number", "status", "reason", "total", "currency", "issued_at", "refunded"
    )
    return [
        TimelineEntry(
            at=row["issued_at"],
            source="credit_note",
            kind=row["status"],
            summary=row["reason"],
            amount=-row["total"],
            currency=row["currency"],
            reference=row["number"],
            details={"refunded": row["refunded"]},
        )
        for row in rows
    ]


# Event types another source already shows (or too many to list, like usage batches).
_EVENTS_SHOWN_ELSEWHERE = (
    "invoice.",
    "payment.",
    "customer.subscription.",
    "credit_note.",
    "dunning",
    "billing.meter",
    "feedback.response_received",
)


@timeline_source("event")
def _other_events(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    """The rest of the event log: payment methods, discounts, balance adjustments..."""
    shown = Q()
    for prefix in _EVENTS_SHOWN_ELSEWHERE:
        shown |= Q(type__startswith=prefix)
    rows = (
        DomainEvent.objects.filter(customer_id=customer_id, occurred_at__gte=start, occurred_at__lt=end)
        .exclude(shown)
        .values("type", "object_type", "object_id", "occurred_at")
    )
    return [
        TimelineEntry(
            at=row["occurred_at"],
            source="event",
            kind=row["type"],
            summary=row["object_type"],
            reference=f"{row['object_type']}:{row['object_id']}",
        )
        for row in rows
    ]


@timeline_source("notification")
def _notifications(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    """Emails sent to the customer (or skipped/failed), by the notification log."""
    rows = (
        NotificationLog.objects.filter(customer_id=customer_id)
        .alias(when=Coalesce("sent_at", "created_at"))
        .filter(when__gte=start, when__lt=end)
        .values("kind", "status", "subject", "recipient", "created_at", "sent_at", "dedupe_key")
    )
    return [
        TimelineEntry(
            at=row["sent_at"] or row["created_at"],
            source="notification",
            kind=f"{row['kind']}:{row['status']}",
            summary=row["subject"] or row["kind"],
            reference=row["dedupe_key"],
            details={"recipient": row["recipient"], "status": row["status"]},
        )
        for row in rows
    ]


@timeline_source("survey")
def _survey_answers(*, customer_id: int, start: datetime, end: datetime) -> list[TimelineEntry]:
    """Survey responses with their answers: scores, choices and the start of free text."""
    responses = (
        SurveyResponse.objects.filter(customer_id=customer_id, submitted_at__gte=start, submitted_at__lt=end)
        .select_related("survey")
        .prefetch_related("answers__question", "answers__choices")
    )
    entries = []
    for response in responses:
        answers = []
        for answer in response.answers.all():
            if answer.score is not None:
                answers.append(f"{answer.question.kind}={answer.score}")
            answers.extend(choice.code for choice in answer.choices.all())
            if answer.text:
                answers.append(answer.text[:120])
        entries.append(
            TimelineEntry(
                at=response.submitted_at,
                source="survey",
                kind=response.trigger,
                summary=response.survey.name,
                reference=f"survey:{response.survey_id}",
                details={"answers": "; ".join(answers)},
            )
        )
    return entries
