"""The next invoice of a subscription: built by one pure function, previewed without writing.

`renewal_draft` turns data that the caller has already loaded into a DraftInvoice and
runs no query, so the billing run can call it for a whole chunk of subscriptions with
everything fetched in bulk:

    subscriptions = ... .select_related("customer", "coupon").prefetch_related("coupon__applies_to")
    items = subscription_items_snapshots_bulk(subscription_ids=ids)          # 1 query
    pending = pending_invoice_items_bulk(subscriptions=subscriptions)        # 1 query
    usage = usage_for_periods(wanted=[window for s in subscriptions
                                      for window in renewal_usage_windows(subscription=s, items=items[s.pk])])
    draft = renewal_draft(subscription=s, items=items[s.pk], period_start=..., period_end=...,
                          usage=usage, pending_items=pending[s.pk],
                          discounts=discounts_for_period(subscription=s))

What a renewal invoice holds:
* licensed items in advance for [period_start, period_end), prorated to the second
  when that period is shorter than the cycle's (a first period up to an anchor);
* metered items in arrears: usage over `usage_period` (default: the subscription's
  current period, the one that is ending); usage during a trial is free;
* pending invoice items (prorations, one-off charges, usage of removed meters);
* the discounts given. Tax and the customer's credit are added by invoice_build.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import cast

from django.utils.translation import gettext as _

from billing.cycles import Period, period_containing
from billing.models import InvoiceItem, Meter, Price, ScheduledChange, Subscription, SubscriptionItem
from billing.selectors import (
    ItemSnapshot,
    cycle_spec,
    item_snapshot,
    pending_invoice_items,
    period_after,
    product_key,
    resume_period,
    subscription_items_snapshot,
)
from billing.services.coupons import customer_discounts_prefetch, discounts_for_period, subscription_discounts_prefetch
from billing.services.usage import (
    UsageKey,
    usage_aggregate_windows,
    usage_charge_amount,
    usage_key,
)
from billing.wallets.consumption import CreditsPreview
from config import clock
from config.errors import DomainConflict
from config.money import round_fraction
from invoices.services.drafts import invoice_build
from invoices.types import DraftDiscount, DraftInvoice, DraftLine, InvoicePreview

UsageByWindow = Mapping[UsageKey, Decimal]


class NoUpcomingInvoice(DomainConflict):
    """The subscription will not invoice again (canceled, incomplete, or paused without a resume date)."""


def _microseconds(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _tax_inclusive(price: Price) -> bool:
    return price.tax_behavior == Price.TaxBehavior.INCLUSIVE


def _as_snapshot(item: ItemSnapshot | SubscriptionItem) -> ItemSnapshot:
    if isinstance(item, ItemSnapshot):
        return item
    # A SubscriptionItem: query-free when loaded with select_related("price__product").
    return item_snapshot(price=item.price, quantity=item.quantity)


def advance_lines(
    *, subscription: Subscription, tz: str, items: Sequence[ItemSnapshot], period: Period
) -> list[DraftLine]:
    """Licensed items billed in advance for `period`; a period shorter than the cycle's is prorated."""
    nominal = period_containing(
        cycle_spec(subscription.cycle), anchor=subscription.billing_cycle_anchor, tz=tz, at=period.start
    )
    share = Fraction(1)
    if (nominal.start, nominal.end) != (period.start, period.end):
        share = min(
            Fraction(1), Fraction(_microseconds(period.end - period.start), _microseconds(nominal.end - nominal.start))
        )
    free = subscription.free_until is not None and period.end <= subscription.free_until
    if free:
        return free_period_lines(items=items, period=period)
    lines = []
    for item in items:
        if item.metered or item.in_arrears:  # arrears items are billed when the period ends (arrears_lines)
            continue
        full = item.full_amount()
        whole = share == 1
        lines.append(
            DraftLine(
                kind="subscription",
                description=item.label if whole else _("Remaining time on %(item)s") % {"item": item.label},
                amount=full if whole else round_fraction(full * share),
                quantity=Decimal(item.quantity),
                unit_amount=item.price.unit_amount if whole and item.price.scheme == Price.Scheme.PER_UNIT else None,
                price_id=item.price.pk,
                product_key=item.product_key,
                period_start=period.start,
                period_end=period.end,
                tax_inclusive=_tax_inclusive(item.price),
                metadata={"item": item.key},
            )
        )
    return lines


def trial_lines(*, items: Sequence[ItemSnapshot], period: Period) -> list[DraftLine]:
    """Zero lines for a trial's invoice, one per licensed item, showing what the trial covers."""
    return [
        DraftLine(
            kind="subscription",
            description=_("Trial period for %(item)s") % {"item": item.label},
            amount=0,
            quantity=Decimal(item.quantity),
            price_id=item.price.pk,
            product_key=item.product_key,
            period_start=period.start,
            period_end=period.end,
            tax_inclusive=_tax_inclusive(item.price),
            metadata={"item": item.key, "trial": True},
        )
        for item in items
        if not item.metered
    ]


def usage_filter_label(price: Price) -> str:
    """ "region: eu" for a price that bills the meter's events from the EU (issue 16)."""
    return "; ".join(f"{key}: {', '.join(values)}" for key, values in sorted((price.usage_filter or {}).items()))


def free_period_lines(*, items: Sequence[ItemSnapshot], period: Period) -> list[DraftLine]:
    """Zero lines for the free time up to a first billing date (created with proration_behavior=none)."""
    return [
        DraftLine(
            kind="subscription",
            description=_("Free period until the first billing date for %(item)s") % {"item": item.label},
            amount=0,
            quantity=Decimal(item.quantity),
            price_id=item.price.pk,
            product_key=item.product_key,
            period_start=period.start,
            period_end=period.end,
            tax_inclusive=_tax_inclusive(item.price),
            metadata={"item": item.key, "free": True},
        )
        for item in items
        if not item.metered and not item.in_arrears
    ]


def period_share(*, subscription: Subscription, tz: str, start: datetime, end: datetime) -> Fraction:
    """The part of its cycle's period that [start, end) is (1 for a whole period), as advance_lines prorates."""
    nominal = period_containing(
        cycle_spec(subscription.cycle), anchor=subscription.billing_cycle_anchor, tz=tz, at=start
    )
    if (nominal.start, nominal.end) == (start, end):
        return Fraction(1)
    return min(Fraction(1), Fraction(_microseconds(end - start), _microseconds(nominal.end - nominal.start)))


def arrears_start(*, subscription: Subscription, item: ItemSnapshot, period: Period) -> datetime:
    """Where an arrears item's billable time in `period` starts: after a change, a trial or a free stub."""
    start = period.start
    for later in (item.arrears_from, subscription.trial_end, subscription.free_until):
        if later is not None and later > start:
            start = later
    return start


def arrears_lines(
    *, subscription: Subscription, tz: str, items: Sequence[ItemSnapshot], period: Period
) -> list[DraftLine]:
    """Licensed items billed in arrears for the time they were held in `period`, which just ended.

    The quantity is the one held since `arrears_from` (a change bills the time before it
    at once, see `arrears_used_items`); a part of the cycle's period is prorated like an
    in-advance item. Trial time and a free first period cost nothing.
    """
    lines = []
    for item in items:
        if not item.in_arrears:
            continue
        start = arrears_start(subscription=subscription, item=item, period=period)
        if start >= period.end:
            continue
        full = item.full_amount()
        share = period_share(subscription=subscription, tz=tz, start=start, end=period.end)
        whole = share == 1
        lines.append(
            DraftLine(
                kind="subscription",
                description=(
                    _("%(item)s (in arrears)") % {"item": item.label}
                    if whole
                    else _("Time used on %(item)s (in arrears)") % {"item": item.label}
                ),
                amount=full if whole else round_fraction(full * share),
                quantity=Decimal(item.quantity),
                unit_amount=item.price.unit_amount if whole and item.price.scheme == Price.Scheme.PER_UNIT else None,
                price_id=item.price.pk,
                product_key=item.product_key,
                period_start=start,
                period_end=period.end,
                tax_inclusive=_tax_inclusive(item.price),
                metadata={"item": item.key, "arrears": True},
            )
        )
    return lines


def minimum_spend_lines(
    *, subscription: Subscription, tz: str, items: Sequence[ItemSnapshot], usage: Sequence[DraftLine], period: Period
) -> list[DraftLine]:
    """True-up lines for metered prices whose usage in `period` cost less than their minimum.

    The minimum (Price.minimum_amount, Lago's per-charge `min_amount_cents`) is per period
    of the cycle, prorated by time for a shorter one (a first period up to an anchor, a
    cancellation); trial time owes none. True-up = minimum - usage charge, before tax.
    """
    lines = []
    charged: dict[int | None, int] = {}
    for line in usage:
        charged[line.price_id] = charged.get(line.price_id, 0) + line.amount
    for item in items:
        if not item.metered or not item.price.minimum_amount:
            continue
        start = period.start
        if subscription.trial_end is not None and subscription.trial_end > start:
            start = subscription.trial_end
        if start >= period.end:
            continue
        share = period_share(subscription=subscription, tz=tz, start=start, end=period.end)
        minimum = item.price.minimum_amount if share == 1 else round_fraction(item.price.minimum_amount * share)
        true_up = minimum - charged.get(item.price.pk, 0)
        if true_up <= 0:
            continue
        lines.append(
            DraftLine(
                kind="usage",
                description=_("Minimum spend adjustment for %(item)s") % {"item": item.label},
                amount=true_up,
                quantity=Decimal(1),
                price_id=item.price.pk,
                product_key=item.product_key,
                period_start=start,
                period_end=period.end,
                tax_inclusive=_tax_inclusive(item.price),
                metadata={"item": item.key, "minimum_spend": minimum},
            )
        )
    return lines


def usage_line(*, item: ItemSnapshot, quantity: Decimal, period: Period) -> DraftLine:
    label = item.label
    if item.price.usage_filter:
        label = _("%(item)s — %(filter)s") % {"item": item.label, "filter": usage_filter_label(item.price)}
    return DraftLine(
        kind="usage",
        description=_("%(item)s (usage)") % {"item": label},
        amount=usage_charge_amount(price=item.price, quantity=quantity),
        quantity=quantity,
        unit_amount=item.price.unit_amount if item.price.scheme == Price.Scheme.PER_UNIT else None,
        price_id=item.price.pk,
        product_key=item.product_key,
        period_start=period.start,
        period_end=period.end,
        tax_inclusive=_tax_inclusive(item.price),
        metadata={"item": item.key, "meter": item.price.meter_id},
    )


def usage_lines(
    *, customer_id: int, items: Sequence[ItemSnapshot], usage: UsageByWindow, period: Period
) -> list[DraftLine]:
    """Metered items in arrears; `usage` is keyed by (customer_id, meter_id, period.start, period.end)."""
    return [
        usage_line(
            item=item,
            quantity=usage.get(
                usage_key(customer_id=customer_id, price=item.price, start=period.start, end=period.end), Decimal(0)
            ),
            period=period,
        )
        for item in items
        if item.metered
    ]


def pending_item_kind(item: InvoiceItem) -> str:
    if item.proration:
        return "proration"
    return "usage" if item.metadata.get("kind") == "usage" else "one_off"


def pending_item_line(item: InvoiceItem) -> DraftLine:
    """A pending InvoiceItem as the invoice line that consumes it (select_related its price)."""
    return DraftLine(
        kind=pending_item_kind(item),
        description=item.description,
        amount=item.amount,
        quantity=Decimal(item.quantity),
        price_id=item.price_id,
        product_key=product_key(item.price.product_id) if item.price is not None else None,
        period_start=item.period_start,
        period_end=item.period_end,
        tax_inclusive=item.tax_behavior == Price.TaxBehavior.INCLUSIVE,
        discountable=item.discountable,
        invoice_item_id=item.pk,
        metadata={"invoice_item": item.pk} if item.pk else {},
    )


def renewal_draft(
    *,
    subscription: Subscription,
    items: Sequence[ItemSnapshot | SubscriptionItem],
    period_start: datetime,
    period_end: datetime,
    usage: UsageByWindow,
    pending_items: Sequence[InvoiceItem],
    discounts: Sequence[DraftDiscount],
    tz: str | None = None,
    usage_period: Period | None = None,
    usage_items: Sequence[ItemSnapshot | SubscriptionItem] | None = None,
    recurring: bool = True,
    billing_reason: str = "subscription_cycle",
) -> DraftInvoice:
    """The invoice that opens the period [period_start, period_end). Pure: runs no query.

    `subscription`: its own columns are read (pk, customer_id, currency, cycle, anchor,
        current period, trial_end, collection method, days_until_due), and
        `customer.timezone` unless `tz` is given (select_related the customer).
    `items`: what is billed in advance for the new period (after any scheduled change):
        ItemSnapshots, or SubscriptionItems loaded with select_related("price__product").
    `usage`: (customer_id, meter_id, start, end) -> usage, e.g. from `usage_for_periods`,
        read for `usage_period` (default: the current period, which ends at
        period_start) and the metered items of `usage_items` (default: `items`).
    `pending_items`: pending InvoiceItems with `price` loaded; the invoice consumes them.
    `discounts`: usually `discounts_for_period(subscription=...)`.
    `recurring=False` bills no new period (the final invoice of a subscription that
        ends at the boundary: pass period_start = period_end = the boundary; as a
        `subscription_cycle` invoice it is the one invoice that starts there).
    """
    tz = tz or subscription.customer.timezone
    advance = [_as_snapshot(item) for item in items]
    arrears = advance if usage_items is None else [_as_snapshot(item) for item in usage_items]
    lines: list[DraftLine] = []
    if recurring:
        lines += advance_lines(
            subscription=subscription, tz=tz, items=advance, period=Period(start=period_start, end=period_end)
        )
    if usage_period is None:
        usage_period = Period(start=subscription.current_period_start, end=subscription.current_period_end)
    in_trial = subscription.trial_end is not None and usage_period.end <= subscription.trial_end
    if not in_trial:
        metered_lines = usage_lines(
            customer_id=subscription.customer_id, items=arrears, usage=usage, period=usage_period
        )
        lines += metered_lines
        # Issue 16, cycles: licensed items billed in arrears, and minimum-spend true-ups.
        lines += arrears_lines(subscription=subscription, tz=tz, items=arrears, period=usage_period)
        lines += minimum_spend_lines(
            subscription=subscription, tz=tz, items=arrears, usage=metered_lines, period=usage_period
        )
    lines += [pending_item_line(item) for item in pending_items]
    return DraftInvoice(
        customer_id=subscription.customer_id,
        currency=subscription.currency,
        billing_reason=billing_reason,
        lines=tuple(lines),
        discounts=tuple(discounts),
        subscription_id=subscription.pk,
        period_start=period_start,
        period_end=period_end,
        collection_method=subscription.collection_method,
        days_until_due=subscription.days_until_due,
    )


def usage_windows(
    *, subscription: Subscription, items: Iterable[ItemSnapshot | SubscriptionItem], period: Period
) -> list[UsageKey]:
    """Which usage an invoice bills: one window per metered item, the customer's events
    on its meter over `period` (aggregated as the meter says)."""
    return [
        usage_key(customer_id=subscription.customer_id, price=item.price, start=period.start, end=period.end)
        for item in items
        if item.price.usage_type == Price.UsageType.METERED
    ]


def renewal_usage_windows(
    *, subscription: Subscription, items: Iterable[ItemSnapshot | SubscriptionItem]
) -> list[UsageKey]:
    """The usage windows a renewal reads: one per metered item, over the current period."""
    return usage_windows(
        subscription=subscription,
        items=items,
        period=Period(start=subscription.current_period_start, end=subscription.current_period_end),
    )


_METER_FIELD = Price._meta.get_field("meter")


def usage_for_period(
    *, subscription: Subscription, items: Iterable[ItemSnapshot], start: datetime, end: datetime
) -> dict[UsageKey, Decimal]:
    """Usage over [start, end) of the metered `items`, keyed as `renewal_draft` reads it.

    No query when there is no metered item; one per aggregation kind otherwise.
    """
    metered = [item for item in items if item.metered]
    if not metered or end <= start:
        return {}
    windows = usage_windows(subscription=subscription, items=metered, period=Period(start=start, end=end))
    meters: dict[int, Meter] | None = None
    if all(_METER_FIELD.is_cached(item.price) for item in metered):
        # A metered price has its meter (price_meter_id checked it); the stubs type the FK as nullable.
        meters = {cast(Meter, item.price.meter).pk: cast(Meter, item.price.meter) for item in metered}
    return usage_aggregate_windows(windows=windows, meters=meters)


def scheduled_items(*, subscription: Subscription, until: datetime) -> tuple[ItemSnapshot, ...] | None:
    """The items of a pending scheduled change effective by `until`, else None."""
    change = ScheduledChange.objects.filter(
        subscription_id=subscription.pk, status=ScheduledChange.Status.PENDING, effective_at__lte=until
    ).first()
    if change is None:
        return None
    return scheduled_change_items(change)


def scheduled_change_items(change: ScheduledChange) -> tuple[ItemSnapshot, ...]:
    prices = Price.objects.select_related("product", "meter").in_bulk([row["price"] for row in change.items])
    return tuple(item_snapshot(price=prices[row["price"]], quantity=row["quantity"]) for row in change.items)


def subscription_load(subscription: Subscription) -> Subscription:
    """A fresh copy with what previews read: customer, brand, test clock, coupon and its products."""
    return (
        Subscription.objects.select_related("customer__brand", "customer__test_clock", "coupon")
        .prefetch_related(subscription_discounts_prefetch(), customer_discounts_prefetch())
        .get(pk=subscription.pk)
    )


def upcoming_invoice(*, subscription: Subscription, at: datetime | None = None) -> InvoicePreview:
    """The subscription's next invoice as it stands at `at` (default: now). Writes nothing.

    Active (or past due): the renewal at the end of the current period, with the usage
    recorded up to `at`; a trial: the first paid invoice at trial end; canceling at
    period end: the final invoice (usage and pending items); paused with a resume
    date: the invoice the resume will issue. Raises NoUpcomingInvoice otherwise.
    """
    subscription = subscription_load(subscription)
    customer = subscription.customer
    at = at or clock.now(customer=customer)
    status = subscription.status
    if status in (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE):
        raise NoUpcomingInvoice(_("This subscription will not be invoiced again."))
    if status == Subscription.Status.PAUSED and subscription.resumes_at is None:
        raise NoUpcomingInvoice(_("This subscription is paused with no resume date."))

    tz = customer.timezone
    current_items = subscription_items_snapshot(subscription=subscription)
    items = current_items
    usage_period = Period(start=subscription.current_period_start, end=subscription.current_period_end)
    if status == Subscription.Status.PAUSED and subscription.resumes_at is not None:  # None raised above
        period = resume_period(subscription=subscription, tz=tz, at=subscription.resumes_at)
        usage_period = Period(start=subscription.current_period_start, end=period.start)
        # As the resume does: the paused time owes nothing in arrears (the pause billed the time before it).
        current_items = tuple(
            replace(item, arrears_from=period.start) if item.in_arrears else item for item in current_items
        )
        subscription.billing_cycle_anchor = period.start
    else:
        period = period_after(subscription=subscription, tz=tz)
        items = scheduled_items(subscription=subscription, until=period.start) or current_items
    usage = usage_for_period(
        subscription=subscription, items=current_items, start=usage_period.start, end=min(at, usage_period.end)
    )
    # Usage so far is shown against the whole period, as the renewal will bill it.
    usage = {window._replace(start=usage_period.start, end=usage_period.end): value for window, value in usage.items()}
    draft = renewal_draft(
        subscription=subscription,
        tz=tz,
        items=items,
        usage_items=current_items,
        period_start=period.start,
        period_end=period.end,
        usage=usage,
        usage_period=usage_period,
        pending_items=pending_invoice_items(subscription=subscription),
        discounts=discounts_for_period(subscription=subscription),
        recurring=not (
            subscription.cancel_at_period_end
            or (subscription.cancel_at is not None and subscription.cancel_at <= subscription.current_period_end)
        ),
    )
    credits = CreditsPreview(customer_id=customer.pk, currency=draft.currency)
    return invoice_build(customer=customer, draft=draft, credits=credits, at=max(period.start, at))
