"""Usage alerts and progressive billing (issue 16, item 9), and a subscription's current usage.

A `UsageThreshold` watches the current period of one subscription: the cost of its
metered items so far (minor units, before discounts and tax) or the units of one meter.
When usage reaches it, `usage_thresholds_evaluate` writes one `UsageThresholdCrossing`
per threshold and period (a unique row: the durable "already alerted" marker) and the
event `subscription.usage_threshold_reached` in the same transaction.

Progressive billing (Lago): a threshold with `progressive_billing` also invoices the
usage so far at once (billing reason `subscription_threshold`, as Stripe names it). For
each price billed that way a pending credit item (kind `progressive_billing_credit`,
not discountable) is left for the period-end invoice, which bills the full period's
usage and consumes the credits: what was billed early is subtracted, never billed twice,
and the period's discounts apply once, on the whole usage.

When it runs: the sweeper `usage_thresholds_sweep` (Celery beat, every minute) looks only
at thresholds whose customer has usage events newer than the threshold's
`checked_event_id` marker, so ingestion stays a plain insert; the billing run (and a
test clock's advance, which runs it) evaluates every threshold before renewing, so a
threshold reached just before the period end is still reported once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Sum
from django.utils.translation import gettext as _

from billing.cycles import Period
from billing.locks import subscription_qs_for_update
from billing.models import (
    InvoiceItem,
    Meter,
    Price,
    Subscription,
    TestClock,
    UsageEvent,
    UsageThreshold,
    UsageThresholdCrossing,
)
from billing.selectors import ItemSnapshot, subscription_items_snapshot
from billing.services.subscriptions.common import invoice_issue
from billing.services.upcoming import usage_for_period, usage_line
from billing.services.usage import usage_aggregate, usage_key
from config import clock
from config.errors import DomainError
from config.events.log import event_record
from invoices.models import Invoice
from invoices.types import DraftInvoice, DraftLine

THRESHOLD_REACHED = "subscription.usage_threshold_reached"
PROGRESSIVE_CREDIT_KIND = "progressive_billing_credit"
MAX_THRESHOLDS_PER_SUBSCRIPTION = 20
WATCHED_STATUSES = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE)


class UsageThresholdError(DomainError, ValidationError):
    code = "usage_threshold_invalid"
    http_status = 400


# -- current usage -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageRow:
    price: Price
    label: str  # the item's label, with its filter ("API calls — region: eu")
    usage_filter: dict
    units: Decimal
    amount: int  # minor units, before discounts and tax


@dataclass(frozen=True, slots=True)
class ThresholdState:
    threshold: UsageThreshold
    current: Decimal  # the amount (minor units) or units the threshold compares
    reached_at: datetime | None  # in this period

    @property
    def target(self) -> Decimal:
        return Decimal(self.threshold.amount or 0) if _is_amount(self.threshold) else Decimal(self.threshold.units or 0)

    @property
    def progress(self) -> int:
        """Percent of the threshold reached, 0..100 (for progress bars)."""
        if not self.target:
            return 100
        return min(100, int(self.current * 100 / self.target))


@dataclass(frozen=True, slots=True)
class CurrentUsage:
    subscription: Subscription
    period: Period
    at: datetime  # usage is counted over [period.start, at)
    currency: str
    rows: tuple[UsageRow, ...]
    thresholds: tuple[ThresholdState, ...]

    @property
    def amount(self) -> int:
        return sum(row.amount for row in self.rows)


def _is_amount(threshold: UsageThreshold) -> bool:
    return threshold.kind == UsageThreshold.Kind.AMOUNT


def _usage_rows(*, subscription: Subscription, items: Sequence[ItemSnapshot], period: Period, end: datetime) -> list:
    metered = [item for item in items if item.metered]
    in_trial = subscription.trial_end is not None and end <= subscription.trial_end
    if not metered or end <= period.start:
        return []
    usage = usage_for_period(subscription=subscription, items=metered, start=period.start, end=end)
    rows = []
    for item in metered:
        key = usage_key(customer_id=subscription.customer_id, price=item.price, start=period.start, end=end)
        units = usage.get(key, Decimal(0))
        line = usage_line(item=item, quantity=units, period=period)
        rows.append(
            UsageRow(
                price=item.price,
                label=line.description,
                usage_filter=dict(item.price.usage_filter or {}),
                units=Decimal(units),
                amount=0 if in_trial else line.amount,
            )
        )
    return rows


def subscription_current_usage(*, subscription: Subscription, at: datetime | None = None) -> CurrentUsage:
    """Units and cost so far of each metered item in the current period, and where each
    threshold stands (read only)."""
    at = at or clock.now(customer=subscription.customer)
    period = Period(start=subscription.current_period_start, end=subscription.current_period_end)
    end = max(period.start, min(at, period.end))
    items = subscription_items_snapshot(subscription=subscription)
    rows = _usage_rows(subscription=subscription, items=items, period=period, end=end)
    amount = sum(row.amount for row in rows)
    thresholds = list(subscription.usage_thresholds.select_related("meter"))
    reached = dict(
        UsageThresholdCrossing.objects.filter(threshold__in=thresholds, period_start=period.start).values_list(
            "threshold_id", "reached_at"
        )
    )
    states = []
    for threshold in thresholds:
        current = Decimal(amount) if _is_amount(threshold) else _meter_units(subscription, threshold, period, end)
        states.append(ThresholdState(threshold=threshold, current=current, reached_at=reached.get(threshold.pk)))
    return CurrentUsage(
        subscription=subscription,
        period=period,
        at=end,
        currency=subscription.currency,
        rows=tuple(rows),
        thresholds=tuple(states),
    )


def _meter_units(subscription: Subscription, threshold: UsageThreshold, period: Period, end: datetime) -> Decimal:
    meter = threshold.meter
    assert meter is not None  # a units threshold has its meter (check constraint)
    if end <= period.start:
        return Decimal(0)
    return usage_aggregate(customer_id=subscription.customer_id, meter=meter, start=period.start, end=end)


# -- thresholds: create, delete --------------------------------------------------------


def usage_threshold_create(
    *,
    subscription: Subscription,
    amount: int | None = None,
    meter: Meter | None = None,
    units: Decimal | None = None,
    progressive_billing: bool = False,
) -> UsageThreshold:
    """A threshold on the cost of usage so far (`amount`, minor units) or on a meter's `units`."""
    if (amount is None) == (units is None):
        raise UsageThresholdError(_("Give either an amount or a number of units."), code="usage_threshold_invalid")
    if units is not None and meter is None:
        raise UsageThresholdError(_("A units threshold needs a meter."), code="usage_threshold_invalid")
    if amount is not None and meter is not None:
        raise UsageThresholdError(_("An amount threshold has no meter."), code="usage_threshold_invalid")
    if meter is not None and meter.livemode != subscription.customer.livemode:
        raise UsageThresholdError(_("No meter has this id."), code="usage_threshold_invalid")
    threshold = UsageThreshold(
        subscription=subscription,
        kind=UsageThreshold.Kind.AMOUNT if amount is not None else UsageThreshold.Kind.UNITS,
        amount=amount,
        meter=meter,
        units=units,
        progressive_billing=progressive_billing,
        # Events already stored are looked at by the first evaluation, not skipped.
        checked_event_id=0,
    )
    try:
        threshold.full_clean(exclude=["subscription"])
    except ValidationError as error:
        raise UsageThresholdError(error.messages[0], code="usage_threshold_invalid") from error
    with transaction.atomic(savepoint=False):
        subscription_qs_for_update().filter(pk=subscription.pk).first()
        if subscription.usage_thresholds.count() >= MAX_THRESHOLDS_PER_SUBSCRIPTION:
            raise UsageThresholdError(
                _("A subscription has at most %(max)s usage thresholds.") % {"max": MAX_THRESHOLDS_PER_SUBSCRIPTION},
                code="usage_threshold_invalid",
            )
        threshold.save()
    return threshold


def usage_threshold_delete(*, threshold: UsageThreshold) -> None:
    with transaction.atomic(savepoint=False):
        subscription_qs_for_update().filter(pk=threshold.subscription_id).first()
        UsageThreshold.objects.filter(pk=threshold.pk).delete()


# -- evaluation ---------------------------------------------------------------------


def _already_billed(*, subscription: Subscription, period_start: datetime) -> dict[int, int]:
    """Per price: what progressive invoices already billed this period (the pending credits)."""
    rows = (
        InvoiceItem.objects.filter(
            subscription_id=subscription.pk,
            period_start=period_start,
            metadata__kind=PROGRESSIVE_CREDIT_KIND,
        )
        .values_list("price_id")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {price_id: -int(total or 0) for price_id, total in rows}


def _progressive_invoice(
    *, subscription: Subscription, rows: Sequence[UsageRow], period: Period, at: datetime
) -> Invoice | None:
    """Invoice the usage not yet billed this period; leave a credit for the period-end invoice."""
    billed = _already_billed(subscription=subscription, period_start=period.start)
    lines: list[DraftLine] = []
    credits: list[InvoiceItem] = []
    for row in rows:
        due = row.amount - billed.get(row.price.pk, 0)
        if due <= 0:
            continue
        lines.append(
            DraftLine(
                kind="usage",
                description=_("%(item)s (usage to %(date)s)") % {"item": row.label, "date": f"{at:%Y-%m-%d}"},
                amount=due,
                quantity=row.units,
                price_id=row.price.pk,
                product_key=f"product:{row.price.product_id}",
                period_start=period.start,
                period_end=at,
                tax_inclusive=row.price.tax_behavior == Price.TaxBehavior.INCLUSIVE,
                # The period-end invoice carries the period's discounts, once, on all the usage.
                discountable=False,
                metadata={"progressive_billing": True, "price": row.price.pk},
            )
        )
        credits.append(
            InvoiceItem(
                customer_id=subscription.customer_id,
                subscription_id=subscription.pk,
                price=row.price,
                description=_("%(item)s: usage already invoiced") % {"item": row.label},
                quantity=1,
                amount=-due,
                currency=subscription.currency,
                period_start=period.start,
                period_end=period.end,
                tax_behavior=row.price.tax_behavior,
                discountable=False,
                metadata={"kind": PROGRESSIVE_CREDIT_KIND},
            )
        )
    if not lines:
        return None
    draft = DraftInvoice(
        customer_id=subscription.customer_id,
        currency=subscription.currency,
        billing_reason=Invoice.BillingReason.SUBSCRIPTION_THRESHOLD,
        lines=tuple(lines),
        subscription_id=subscription.pk,
        period_start=period.start,
        period_end=at,
        collection_method=subscription.collection_method,
        days_until_due=subscription.days_until_due,
    )
    invoice = invoice_issue(draft=draft, customer=subscription.customer, at=at)
    for credit in credits:
        credit.full_clean(exclude=["customer", "subscription", "price", "invoice"])
    InvoiceItem.objects.bulk_create(credits)
    return invoice


def _reached(state: ThresholdState) -> bool:
    return state.current >= state.target


@transaction.atomic(savepoint=False)
def usage_thresholds_evaluate(
    *, subscription: Subscription, at: datetime | None = None
) -> list[UsageThresholdCrossing]:
    """Record the thresholds that usage reached in the current period (each once per period);
    invoice the usage so far when one of them is progressive and the period is not over."""
    locked = subscription_qs_for_update().select_related("customer").get(pk=subscription.pk)
    if locked.status not in WATCHED_STATUSES:
        return []
    at = at or clock.now(customer=locked.customer)
    usage = subscription_current_usage(subscription=locked, at=at)
    crossed = [state for state in usage.thresholds if state.reached_at is None and _reached(state)]
    if not crossed:
        return []
    invoice = None
    period_open = usage.at < usage.period.end
    in_trial = locked.trial_end is not None and usage.at <= locked.trial_end
    if period_open and not in_trial and any(state.threshold.progressive_billing for state in crossed):
        invoice = _progressive_invoice(subscription=locked, rows=usage.rows, period=usage.period, at=usage.at)
    crossings = []
    for state in crossed:
        threshold = state.threshold
        crossing = UsageThresholdCrossing.objects.create(
            threshold=threshold,
            period_start=usage.period.start,
            reached_at=usage.at,
            usage_amount=usage.amount,
            usage_units=state.current if not _is_amount(threshold) else Decimal(0),
            invoice=invoice if threshold.progressive_billing else None,
        )
        crossings.append(crossing)
        event_record(
            type=THRESHOLD_REACHED,
            object_type="subscription",
            object_id=locked.pk,
            customer_id=locked.customer_id,
            occurred_at=usage.at,
            data={
                "subscription": locked.pk,
                "threshold": threshold.pk,
                "kind": threshold.kind,
                "amount": threshold.amount,
                "meter": threshold.meter.key if threshold.meter is not None else None,
                "units": str(threshold.units) if threshold.units is not None else None,
                "currency": locked.currency,
                "period_start": usage.period.start.isoformat(),
                "period_end": usage.period.end.isoformat(),
                "usage_amount": usage.amount,
                "usage_units": str(state.current) if not _is_amount(threshold) else None,
                "progressive_invoice": invoice.pk if invoice is not None and threshold.progressive_billing else None,
            },
        )
    return crossings


def usage_thresholds_sweep(*, limit: int = 500) -> int:
    """Evaluate the subscriptions whose customers reported usage since their thresholds were
    last checked; returns how many subscriptions were evaluated. Safe to run concurrently
    and repeatedly: a crossing is unique per threshold and period."""
    newer = UsageEvent.objects.filter(
        customer_id=OuterRef("subscription__customer_id"), pk__gt=OuterRef("checked_event_id")
    )
    subscription_ids = list(
        UsageThreshold.objects.filter(Exists(newer), subscription__status__in=WATCHED_STATUSES)
        .values_list("subscription_id", flat=True)
        .order_by("subscription_id")
        .distinct()[:limit]
    )
    for subscription in Subscription.objects.filter(pk__in=subscription_ids).select_related("customer"):
        latest = UsageEvent.objects.filter(customer_id=subscription.customer_id).aggregate(top=Max("pk"))["top"] or 0
        with transaction.atomic():
            usage_thresholds_evaluate(subscription=subscription)
            UsageThreshold.objects.filter(subscription_id=subscription.pk, checked_event_id__lt=latest).update(
                checked_event_id=latest
            )
    return len(subscription_ids)


def usage_thresholds_evaluate_due(*, as_of: datetime, test_clock: TestClock | None) -> None:
    """The billing run's pass (real clock or one test clock): every watched subscription
    with thresholds is evaluated at `as_of`, capped at its period end, before renewals."""
    scope: dict[str, TestClock | bool] = (
        {"customer__test_clock": test_clock} if test_clock else {"customer__test_clock__isnull": True}
    )
    subscriptions = Subscription.objects.filter(
        Exists(UsageThreshold.objects.filter(subscription_id=OuterRef("pk"))), status__in=WATCHED_STATUSES, **scope
    ).select_related("customer")
    for subscription in subscriptions:
        with transaction.atomic():
            usage_thresholds_evaluate(subscription=subscription, at=min(as_of, subscription.current_period_end))
