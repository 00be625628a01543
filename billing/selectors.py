"""Read-only queries over subscriptions, their items and what they will bill.

Selectors return querysets or frozen dataclasses. Functions named `*_bulk` answer for
many subscriptions in a fixed number of queries (the billing run works in chunks).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum

from billing.cycles import CycleSpec, Period, next_boundary
from billing.models import (
    BillingRun,
    BillingRunFailure,
    InvoiceItem,
    Price,
    ScheduledChange,
    Subscription,
    SubscriptionItem,
    TestClock,
)
from billing.pricing import Tier, package_amount_with_free_units, price_amount, tiers_from_json
from billing.proration import ItemCharge
from billing.states import BILLABLE_STATUSES
from config.money import round_fraction
from config.types import JsonDict
from invoices.calculations import DiscountInput, LineInput, compute_invoice_totals

# -- prices ---------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _tiers(price_id: int, tiers_key: str) -> tuple[Tier, ...]:
    return tiers_from_json(json.loads(tiers_key))


def price_tiers(price: Price) -> tuple[Tier, ...]:
    return _tiers(price.pk or 0, json.dumps(price.tiers, sort_keys=True))


def price_amount_for(*, price: Price, quantity: int) -> int:
    """The amount in minor units of `quantity` units of `price` for one period."""
    if price.scheme in (Price.Scheme.TIERED_GRADUATED, Price.Scheme.TIERED_VOLUME):
        return price_amount(scheme=price.scheme, quantity=quantity, tiers=price_tiers(price))
    if price.scheme == Price.Scheme.PACKAGE and price.free_units and price.unit_amount is not None:
        # Issue 16 (usage): Lago's package with free units.
        return package_amount_with_free_units(
            quantity=quantity,
            unit_amount=price.unit_amount,
            package_size=price.package_size,
            free_units=price.free_units,
            package_rounding=price.package_rounding,
        )
    return price_amount(
        scheme=price.scheme,
        quantity=quantity,
        unit_amount=price.unit_amount,
        package_size=price.package_size,
        package_rounding=price.package_rounding,
    )


@lru_cache(maxsize=1024)
def _cycle_from_json(key: str) -> CycleSpec:
    return CycleSpec.from_dict(json.loads(key))


def cycle_spec(data: JsonDict | None) -> CycleSpec:
    """A CycleSpec from a Price/Subscription `cycle` JSON, parsed once per distinct value."""
    return _cycle_from_json(json.dumps(data, sort_keys=True))


def product_key(product_id: int) -> str:
    """How invoice lines and coupons name a product (DiscountInput.products)."""
    return f"product:{product_id}"


@dataclass(frozen=True, slots=True)
class ItemSnapshot:
    """A subscription item as billing sees it: a price, a quantity and a label.

    Only the price's own columns are read (never a relation), so code holding
    snapshots runs without queries.
    """

    price: Price
    quantity: int
    label: str  # price nickname, else the product's name
    # Issue 16, cycles: for an item billed in arrears, where its unbilled time starts
    # (None: the start of the current period; later after a mid-period change).
    arrears_from: datetime | None = None

    @property
    def in_arrears(self) -> bool:
        """A licensed item billed at the end of its period (Price.billing_timing)."""
        return not self.metered and self.price.billing_timing == Price.BillingTiming.IN_ARREARS

    @property
    def key(self) -> str:
        return f"price:{self.price.pk}"

    @property
    def metered(self) -> bool:
        return self.price.usage_type == Price.UsageType.METERED

    @property
    def product_key(self) -> str:
        return product_key(self.price.product_id)

    def full_amount(self) -> int:
        """What a full period of this licensed item costs, in minor units (0 when metered)."""
        if self.metered:
            return 0
        return price_amount_for(price=self.price, quantity=self.quantity)

    def as_json(self) -> dict[str, int]:
        return {"price": self.price.pk, "quantity": self.quantity}


def item_snapshot(*, price: Price, quantity: int, product_name: str | None = None) -> ItemSnapshot:
    label = price.nickname or (product_name if product_name is not None else price.product.name)
    return ItemSnapshot(price=price, quantity=quantity, label=label)


def _snapshot_of(item: SubscriptionItem) -> ItemSnapshot:
    snapshot = item_snapshot(price=item.price, quantity=item.quantity, product_name=item.price.product.name)
    if item.arrears_from is not None:
        snapshot = replace(snapshot, arrears_from=item.arrears_from)
    return snapshot


def _items_queryset() -> QuerySet[SubscriptionItem]:
    return SubscriptionItem.objects.select_related("price__product", "price__meter").order_by("pk")


def subscription_items_snapshot(*, subscription: Subscription) -> tuple[ItemSnapshot, ...]:
    """The subscription's items in the order they were added (one query)."""
    return tuple(_snapshot_of(item) for item in _items_queryset().filter(subscription_id=subscription.pk))


def subscription_items_snapshots_bulk(*, subscription_ids: Iterable[int]) -> dict[int, tuple[ItemSnapshot, ...]]:
    """Items of many subscriptions in one query; subscriptions without items map to ()."""
    ids = list(subscription_ids)
    grouped: dict[int, list[ItemSnapshot]] = {pk: [] for pk in ids}
    for item in _items_queryset().filter(subscription_id__in=ids):
        grouped[item.subscription_id].append(_snapshot_of(item))
    return {pk: tuple(items) for pk, items in grouped.items()}


def item_charges(
    items: Sequence[ItemSnapshot],
    *,
    discount: DiscountInput | None = None,
    discounts: Sequence[DiscountInput] = (),
) -> list[ItemCharge]:
    """Licensed items as proration inputs, net of the discounts the period was billed with.

    Every discount of the list (percent and amount off, in order) is allocated over the
    licensed items as compute_invoice_totals allocates it over an invoice's lines (percent
    per line, amount off by largest remainder), so a credit for unused time returns what
    the customer actually paid for it (issue 16, item 1).
    """
    wanted = [*discounts, *([discount] if discount is not None else [])]
    # Nothing paid in advance for metered or in-arrears items: nothing to credit or prorate.
    licensed = [item for item in items if not item.metered and not item.in_arrears]
    amounts = [item.full_amount() for item in licensed]
    if wanted and licensed:
        totals = compute_invoice_totals(
            currency=licensed[0].price.currency,
            lines=[
                LineInput(amount=amount, tax_rate=Decimal(0), tax_category="Z", product_key=item.product_key)
                for item, amount in zip(licensed, amounts, strict=True)
            ],
            discounts=wanted,
            stacking=discount_stacking(),
        )
        amounts = [line.amount - line.discount_amount for line in totals.lines]
    return [
        ItemCharge(key=item.key, description=item.label, quantity=item.quantity, amount=amount)
        for item, amount in zip(licensed, amounts, strict=True)
    ]


def discount_stacking() -> str:
    """How several discounts combine (settings.TARIF_DISCOUNT_STACKING; docs/billing.md)."""
    return str(settings.TARIF_DISCOUNT_STACKING)


# -- subscriptions -------------------------------------------------------------


def subscription_list_for_customer(*, customer: Any, status: str | None = None) -> QuerySet[Subscription]:
    queryset = Subscription.objects.filter(customer_id=customer.pk)
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-created_at", "-pk")


def due_q(*, as_of: datetime) -> Q:
    """The one rule for "due at `as_of`": billable and its current period ended by then.

    Includes trials that end and subscriptions canceling at period end: the run calls
    `subscription_prepare_renewal` for those before billing (see billing/services/subscriptions/).
    Paused, incomplete and canceled subscriptions are never due. The billing run selects
    with it, and filters with it again under the lock (a rerun finds the period advanced).
    """
    return Q(status__in=BILLABLE_STATUSES, current_period_end__lte=as_of)


def due_subscriptions(*, as_of: datetime, test_clock: TestClock | None = None) -> QuerySet[Subscription]:
    """Subscriptions the billing run renews at `as_of`, in one scope: live customers
    (`test_clock=None`) or the customers of one test clock; earliest boundary first."""
    scope = Q(customer__test_clock__isnull=True) if test_clock is None else Q(customer__test_clock=test_clock)
    return Subscription.objects.filter(due_q(as_of=as_of), scope).order_by("current_period_end", "pk")


def subscriptions_to_resume(*, as_of: datetime) -> QuerySet[Subscription]:
    """Paused subscriptions whose `resumes_at` has come."""
    return Subscription.objects.filter(status=Subscription.Status.PAUSED, resumes_at__lte=as_of).order_by("pk")


def subscriptions_to_cancel(*, as_of: datetime) -> QuerySet[Subscription]:
    """Subscriptions whose scheduled cancellation date has come inside their current period."""
    return Subscription.objects.filter(
        status__in=BILLABLE_STATUSES, cancel_at__lte=as_of, cancel_at__lt=F("current_period_end")
    ).order_by("cancel_at", "pk")


def scheduled_changes_due(*, as_of: datetime) -> QuerySet[ScheduledChange]:
    """Pending scheduled changes effective by `as_of` (mid-period ones too, which no renewal picks up)."""
    return ScheduledChange.objects.filter(status=ScheduledChange.Status.PENDING, effective_at__lte=as_of).order_by(
        "effective_at", "pk"
    )


def resume_period(*, subscription: Subscription, tz: str, at: datetime) -> Period:
    """The period a resume at `at` starts: anchored at `at` (calendar cycles keep their dates)."""
    return Period(start=at, end=next_boundary(cycle_spec(subscription.cycle), anchor=at, tz=tz, after=at))


def period_after(*, subscription: Subscription, tz: str) -> Period:
    """The billing period that follows the current one (what a renewal bills in advance)."""
    start = subscription.current_period_end
    end = next_boundary(cycle_spec(subscription.cycle), anchor=subscription.billing_cycle_anchor, tz=tz, after=start)
    return Period(start=start, end=end)


# -- pending invoice items -----------------------------------------------------


def _pending_items_queryset() -> QuerySet[InvoiceItem]:
    return InvoiceItem.objects.filter(invoice__isnull=True).select_related("price").order_by("pk")


def pending_invoice_items(*, subscription: Subscription) -> list[InvoiceItem]:
    """What the subscription's next invoice will sweep up (one query): the rule of
    `pending_invoice_items_bulk`, for one subscription."""
    return pending_invoice_items_bulk(subscriptions=[subscription])[subscription.pk]


def pending_invoice_items_bulk(*, subscriptions: Sequence[Subscription]) -> dict[int, list[InvoiceItem]]:
    """The pending invoice items each subscription's next invoice sweeps up, in one query.

    The one home of the rule (the upcoming-invoice preview, the billing run and every
    service that invoices a subscription call it): a pending item goes on an invoice in
    its own currency, as Stripe does.
    * an item of the subscription, in the subscription's currency;
    * an item of its customer that belongs to no subscription, in the subscription's
      currency. Among the given subscriptions of that customer in that currency, the
      one whose period ends first (then the oldest) takes it: one invoice consumes an
      item. Previewed alone, each subscription shows it: the first invoice issued takes it.
    An item in a currency none of them bills in stays pending for a later invoice in
    its currency.
    """
    by_id: dict[int, list[InvoiceItem]] = {subscription.pk: [] for subscription in subscriptions}
    currency_of = {subscription.pk: subscription.currency for subscription in subscriptions}
    takes_customer_items: dict[tuple[int, str], Subscription] = {}
    for subscription in sorted(subscriptions, key=lambda s: (s.current_period_end, s.pk)):
        takes_customer_items.setdefault((subscription.customer_id, subscription.currency), subscription)
    rows = _pending_items_queryset().filter(
        Q(subscription_id__in=list(by_id))
        | Q(customer_id__in={customer_id for customer_id, _ in takes_customer_items}, subscription__isnull=True)
    )
    for item in rows:
        if item.subscription_id is not None:
            if currency_of[item.subscription_id] == item.currency:
                by_id[item.subscription_id].append(item)
            continue
        owner = takes_customer_items.get((item.customer_id, item.currency))
        if owner is not None:
            by_id[owner.pk].append(item)
    return by_id


# -- MRR -----------------------------------------------------------------------


def mrr_for(*, items: Sequence[ItemSnapshot], cycle: CycleSpec, currency: str, discounts: Sequence[Any] = ()) -> int:
    """Monthly recurring revenue of `items` billed on `cycle`, in minor units (pure).

    The items' price for one period, minus the recurring discounts given, times the
    cycle's periods per year / 12, rounded once. Metered items are excluded (their
    revenue is not recurring by definition); amounts are taken as priced (a
    tax-inclusive price counts with its tax).
    """
    licensed = [item for item in items if not item.metered]
    if not licensed:
        return 0
    totals = compute_invoice_totals(
        currency=currency,
        lines=[
            LineInput(amount=item.full_amount(), tax_rate=Decimal(0), tax_category="O", product_key=item.product_key)
            for item in licensed
        ],
        discounts=list(discounts),
        stacking=discount_stacking(),
    )
    per_period = totals.subtotal - totals.discount_total
    return round_fraction(per_period * cycle.periods_per_year() / 12)


@dataclass(frozen=True, slots=True)
class BillingRunHealth:
    running: int  # runs in progress now (at most one per scope)
    interrupted: int  # runs ever closed without finishing (killed, lost chunks)
    subscription_failures: int  # attempts to invoice a subscription that failed, ever
    open_failures: int  # subscriptions still waiting for a successful retry


def billing_run_health() -> BillingRunHealth:
    runs = BillingRun.objects.aggregate(
        running=Count("pk", filter=Q(status=BillingRun.Status.RUNNING)),
        interrupted=Count("pk", filter=Q(status=BillingRun.Status.INTERRUPTED)),
    )
    failures = BillingRunFailure.objects.aggregate(
        attempts=Sum("attempts"), open=Count("pk", filter=Q(resolved_at__isnull=True))
    )
    return BillingRunHealth(
        running=runs["running"],
        interrupted=runs["interrupted"],
        subscription_failures=failures["attempts"] or 0,
        open_failures=failures["open"],
    )


def usage_month_rollup_differences(*, limit: int = 50) -> list[str]:
    """Where the month rollups differ from the sums of their daily rollups (empty: none), for
    `verify_integrity` (issue 20 item 7). Both are written by the ingestion in one transaction;
    a write that went around it (a direct insert, a lost statement) would leave the usage report
    wrong without anything else noticing."""
    month = (
        "CAST(date_trunc('month', day) AS date)" if connection.vendor == "postgresql" else "date(day, 'start of month')"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT COALESCE(m.meter_id, d.meter_id), COALESCE(m.customer_id, d.customer_id), COALESCE(m.month, d.month),
                   m.event_count, d.events, m.value_sum, d.total, m.value_max, d.peak
            FROM billing_usagemonthrollup m
            FULL OUTER JOIN (
                SELECT meter_id, customer_id, {month} AS month, SUM(event_count) AS events, SUM(value_sum) AS total,
                       MAX(value_max) AS peak
                FROM billing_usagerollup GROUP BY meter_id, customer_id, {month}
            ) d ON d.meter_id = m.meter_id AND d.customer_id = m.customer_id AND d.month = m.month
            WHERE m.id IS NULL OR d.meter_id IS NULL
               OR m.event_count <> d.events OR m.value_sum <> d.total OR m.value_max <> d.peak
            ORDER BY 1, 2, 3
            LIMIT %s
            """,
            [limit],
        )
        rows = cursor.fetchall()
    return [
        f"meter {meter_id} customer {customer_id} {str(month)[:7]}: month rollup events {events} sum {total} "
        f"max {peak}, daily rollups events {daily_events} sum {daily_total} max {daily_peak}"
        for meter_id, customer_id, month, events, daily_events, total, daily_total, peak, daily_peak in rows
    ]
