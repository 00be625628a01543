"""The customer hub's reads (the console's customer page): one customer's money, documents,
subscriptions, usage and history as plain data, each list one query, capped.

Read-only: nothing here writes. Amounts stay integer minor units; the console formats them.
The timeline merges the event log, the emails sent (NotificationLog) and the survey answers
(through the customer's reverse relation: customers does not import the feedback app).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce

from billing.entitlements.selectors import Entitlement, customer_entitlements
from billing.models import InvoiceItem, Payment, PaymentMethod, Refund, Subscription, UsageEvent
from billing.selectors import subscription_items_snapshots_bulk
from billing.services.subscriptions.common import mrr_of
from billing.services.upcoming import NoUpcomingInvoice, upcoming_invoice
from billing.wallets.models import CreditGrant
from config import clock
from config.errors import DomainError
from config.events.models import DomainEvent
from customers.models import Customer, CustomerUser, NotificationLog
from invoices.einvoicing.selectors import CustomerEinvoicing, customer_einvoicing
from invoices.models import BalanceTransaction, CreditNote, Invoice
from invoices.selectors import customer_balance
from invoices.types import InvoicePreview

# Each tab shows the latest rows; the full lists are one click away (filtered changelists).
# Ten (issue 20): every tab is rendered into the page, so each row costs on every view.
HUB_ROWS = 10
# Upcoming-invoice previews are computed (not stored): a few subscriptions at most.
HUB_PREVIEWS = 3
# Statuses that bill: they count in the customer's MRR and make it "active".
LIVE_STATUSES = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE, Subscription.Status.TRIALING)
MRR_STATUSES = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE)


@dataclass(frozen=True, slots=True)
class HubSummary:
    """The header: what finance asks first about a customer."""

    currency: str
    balance: int  # credit the customer holds (minor units)
    mrr: int
    lifetime_value: int  # paid, net of refunds, in the customer's currency
    overdue_count: int
    overdue_amount: int
    live_subscriptions: int
    default_method: PaymentMethod | None
    erased: bool
    livemode: bool

    @property
    def status(self) -> str:
        """One word for the header badge: erased, overdue, active or inactive."""
        if self.erased:
            return "erased"
        if self.overdue_count:
            return "overdue"
        return "active" if self.live_subscriptions else "inactive"


@dataclass(frozen=True, slots=True)
class UpcomingInvoice:
    subscription: Subscription
    preview: InvoicePreview | None
    at: datetime | None  # when it will be issued
    refusal: str = ""  # why there is none


@dataclass(frozen=True, slots=True)
class UsageRow:
    meter: str
    total: Decimal
    events: int
    since: datetime


@dataclass(frozen=True, slots=True)
class TimelineRow:
    at: datetime
    source: str  # "event", "email", "survey"
    summary: str
    detail: str = ""
    obj: Any = None  # the row, for a link


@dataclass(frozen=True, slots=True)
class CustomerHub:
    customer: Customer
    summary: HubSummary
    subscriptions: list[Subscription]
    mrr_by_subscription: dict[int, int]
    invoices: list[Invoice]
    credit_notes: list[CreditNote]
    payments: list[Payment]
    refunds: list[Refund]
    pending_items: list[InvoiceItem]
    balance_ledger: list[BalanceTransaction]
    upcoming: list[UpcomingInvoice]
    usage: list[UsageRow]
    timeline: list[TimelineRow]
    portal_users: list[CustomerUser]
    counts: dict[str, int] = field(default_factory=dict)
    entitlements: list[Entitlement] = field(default_factory=list)  # what the customer may use now
    credit_grants: list[CreditGrant] = field(default_factory=list)  # prepaid credits (issue 16, wallets)
    einvoicing: CustomerEinvoicing | None = None  # directory address and warnings (issue 18)


def _overdue(customer: Customer, now: datetime) -> tuple[int, int]:
    row = Invoice.objects.filter(
        customer=customer, status=Invoice.Status.OPEN, amount_remaining__gt=0, due_at__lt=now
    ).aggregate(count=Count("pk"), amount=Coalesce(Sum("amount_remaining"), 0))
    return int(row["count"]), int(row["amount"])


def customer_lifetime_value(*, customer: Customer) -> int:
    """What the customer has paid, net of refunds, in its billing currency (minor units)."""
    row = Payment.objects.filter(
        customer=customer, status=Payment.Status.SUCCEEDED, currency=customer.currency
    ).aggregate(paid=Coalesce(Sum(F("amount") - F("amount_refunded")), 0))
    return int(row["paid"])


def _upcoming(subscriptions: list[Subscription], now: datetime) -> list[UpcomingInvoice]:
    previews: list[UpcomingInvoice] = []
    for subscription in subscriptions:
        if subscription.status in (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE):
            continue
        if len(previews) >= HUB_PREVIEWS:
            break
        at = subscription.trial_end if subscription.status == Subscription.Status.TRIALING else None
        at = at or (subscription.resumes_at if subscription.status == Subscription.Status.PAUSED else None)
        try:
            preview = upcoming_invoice(subscription=subscription, at=now)
        except NoUpcomingInvoice as error:
            previews.append(UpcomingInvoice(subscription=subscription, preview=None, at=None, refusal=str(error)))
            continue
        except DomainError as error:  # a preview refused for a data reason: say so, keep the page
            previews.append(
                UpcomingInvoice(subscription=subscription, preview=None, at=None, refusal=error.message_text())
            )
            continue
        previews.append(
            UpcomingInvoice(subscription=subscription, preview=preview, at=at or subscription.current_period_end)
        )
    return previews


def _usage(customer: Customer, subscriptions: list[Subscription]) -> list[UsageRow]:
    """Usage reported since the start of the current period of the customer's live subscriptions."""
    starts = [s.current_period_start for s in subscriptions if s.status in LIVE_STATUSES]
    if not starts:
        return []
    since = min(starts)
    rows = (
        UsageEvent.objects.filter(customer=customer, timestamp__gte=since)
        .values("meter__name")
        .annotate(total=Sum("value"), events=Count("pk"))
        .order_by("meter__name")
    )
    return [UsageRow(meter=row["meter__name"], total=row["total"], events=row["events"], since=since) for row in rows]


def _timeline(customer: Customer) -> list[TimelineRow]:
    rows: list[TimelineRow] = []
    for event in (
        DomainEvent.objects.filter(customer=customer)
        .select_related("acting_user")
        .order_by("-occurred_at", "-pk")[:HUB_ROWS]
    ):
        who = event.acting_user.get_username() if event.acting_user else ""
        rows.append(TimelineRow(at=event.occurred_at, source="event", summary=event.type, detail=who, obj=event))
    for log in NotificationLog.objects.filter(customer=customer).order_by("-created_at", "-pk")[:HUB_ROWS]:
        rows.append(
            TimelineRow(
                at=log.sent_at or log.created_at,
                source="email",
                summary=log.subject or log.get_kind_display(),
                detail=f"{log.get_status_display()} → {log.recipient}" if log.recipient else log.get_status_display(),
                obj=log,
            )
        )
    for response in customer.survey_responses.select_related("survey").order_by("-submitted_at", "-pk")[:HUB_ROWS]:
        rows.append(
            TimelineRow(
                at=response.submitted_at,
                source="survey",
                summary=str(response.survey),
                detail=response.get_trigger_display(),
                obj=response,
            )
        )
    rows.sort(key=lambda row: row.at, reverse=True)
    return rows[:HUB_ROWS]


def customer_hub(*, customer: Customer) -> CustomerHub:
    """Everything the hub page shows for `customer` (a bounded number of queries, whatever its history:
    one per list, plus the upcoming-invoice previews of at most HUB_PREVIEWS subscriptions)."""
    now = clock.now(customer=customer)
    subscriptions = list(
        Subscription.objects.filter(customer=customer)
        .select_related("coupon")
        .prefetch_related("items__price__product", "coupon__applies_to")
        .order_by("-created_at", "-pk")[:HUB_ROWS]
    )
    for subscription in subscriptions:
        subscription.customer = customer  # the same row: no query per subscription for its customer
    billing = [s for s in subscriptions if s.status in MRR_STATUSES and s.currency == customer.currency]
    items = subscription_items_snapshots_bulk(subscription_ids=[s.pk for s in billing])
    mrr_by_subscription = {s.pk: mrr_of(subscription=s, items=items.get(s.pk, ())) for s in billing}
    overdue_count, overdue_amount = _overdue(customer, now)
    summary = HubSummary(
        currency=customer.currency,
        balance=customer_balance(customer_id=customer.pk, currency=customer.currency),
        mrr=sum(mrr_by_subscription.values()),
        lifetime_value=customer_lifetime_value(customer=customer),
        overdue_count=overdue_count,
        overdue_amount=overdue_amount,
        live_subscriptions=sum(1 for s in subscriptions if s.status in LIVE_STATUSES),
        default_method=PaymentMethod.objects.filter(customer=customer, is_default=True, active=True).first(),
        erased=bool((customer.metadata or {}).get("erased_at")),
        livemode=customer.livemode,
    )
    invoices = list(
        Invoice.objects.filter(customer=customer)
        .select_related("subscription")
        .order_by("-created_at", "-pk")[:HUB_ROWS]
    )
    return CustomerHub(
        customer=customer,
        summary=summary,
        subscriptions=subscriptions,
        mrr_by_subscription=mrr_by_subscription,
        invoices=invoices,
        credit_notes=list(
            CreditNote.objects.filter(customer=customer)
            .select_related("invoice")
            .order_by("-issued_at", "-pk")[:HUB_ROWS]
        ),
        payments=list(
            Payment.objects.filter(customer=customer)
            .select_related("invoice", "payment_method")
            .order_by("-attempted_at", "-pk")[:HUB_ROWS]
        ),
        refunds=list(
            Refund.objects.filter(Q(payment__customer=customer))
            .select_related("payment", "invoice")
            .order_by("-pk")[:HUB_ROWS]
        ),
        pending_items=list(
            InvoiceItem.objects.filter(customer=customer, invoice__isnull=True).order_by("-created_at", "-pk")[
                :HUB_ROWS
            ]
        ),
        balance_ledger=list(
            BalanceTransaction.objects.filter(customer=customer).order_by("-created_at", "-pk")[:HUB_ROWS]
        ),
        upcoming=_upcoming(subscriptions, now),
        usage=_usage(customer, subscriptions),
        timeline=_timeline(customer),
        portal_users=list(customer.portal_users.select_related("user").order_by("invited_at", "pk")),
        entitlements=customer_entitlements(customer_id=customer.pk),
        credit_grants=list(CreditGrant.objects.filter(customer=customer).order_by("-created_at", "-pk")[:HUB_ROWS]),
        einvoicing=customer_einvoicing(customer=customer),
    )
