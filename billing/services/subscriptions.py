"""Subscription lifecycle: create, cancel, pause, resume, trials and status changes.

Every status change locks the subscription row (billing.locks), checks the transition
against billing.states and records a DomainEvent in the same transaction. Plan and
quantity changes live in billing/services/changes.py.

Choices (Stripe's behaviour unless said otherwise):

* Instants are truncated to whole seconds, so a preview and the change that follows
  compute the same proration.
* A trial issues a zero invoice at its start (with any one-time prices and pending
  items, which are charged then), and its current period is the trial itself. At the
  trial's end the billing run renews it: the first paid period starts at trial end.
  Metered usage during a trial is not billed.
* The billing-cycle anchor defaults to the start (or the trial's end). With an
  explicit anchor, the first period runs from the start to the anchor's next
  boundary and is prorated, to the second.
* Pausing stops billing, with no credit for the rest of the period. Resuming starts a
  new period at the resume time (Stripe's `billing_cycle_anchor=now`): the anchor
  moves there and the new period, the usage recorded since the last billed period
  started and pending items are invoiced at once. A paused trial resumes as active.
* Canceling immediately ends the subscription; the prorated credit for unused time,
  if asked for, goes to the customer's balance; pending items and usage are invoiced
  in a final invoice. Canceling at period end only sets a flag: the billing run calls
  `subscription_prepare_renewal`, which cancels at the boundary instead of renewing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from billing.cycles import CycleSpec, CycleSpecError, Period, next_boundary, period_containing
from billing.events import event_record
from billing.limits import check_quantity
from billing.locks import subscription_qs_for_update
from billing.models import (
    InvoiceItem,
    Price,
    Product,
    ScheduledChange,
    Subscription,
    SubscriptionChange,
    SubscriptionItem,
)
from billing.proration import cancellation_credit
from billing.selectors import (
    ItemSnapshot,
    cycle_spec,
    item_charges,
    item_snapshot,
    mrr_for,
    mrr_of,
    pending_invoice_items,
    subscription_items_snapshot,
)
from billing.services.coupons import (
    coupon_redeem,
    current_period_discounts,
    discount_counter_after_billing,
    discounts_for_period,
    promotion_code_resolve,
    recurring_discounts,
)
from billing.services.upcoming import pending_item_line, renewal_draft, trial_lines, usage_for_period
from billing.services.usage import UsageWindow, usage_charge_amount
from billing.states import BILLABLE_STATUSES, assert_transition
from config import clock
from config.errors import DomainError
from invoices.selectors import renewal_exists
from invoices.services.drafts import invoice_create
from invoices.types import DraftInvoice

Status = Subscription.Status

MAX_TRIAL_DAYS = 730
DEFAULT_DAYS_UNTIL_DUE = 30


class SubscriptionError(DomainError, ValidationError):
    """A request the subscription services refuse, with a message for the person who made it."""

    code = "subscription_refused"


class SubscriptionConflict(SubscriptionError):
    """A request the subscription's current state does not allow."""

    code = "subscription_conflict"
    http_status = 409


class CustomerCurrencyMismatch(SubscriptionError):
    """A subscription or an invoice item in another currency than its customer's."""

    code = "customer_currency"
    http_status = 409


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """A price and a quantity, as asked for (quantity is ignored for metered prices)."""

    price: Price
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class ValidatedItems:
    recurring: tuple[ItemSnapshot, ...]
    one_time: tuple[ItemSnapshot, ...]
    currency: str
    cycle: CycleSpec


_PRODUCT_FIELD = Price._meta.get_field("product")


def _product_names(prices: Sequence[Price]) -> dict[int, str]:
    """Product names of `prices`, reading loaded products and fetching the others in one query."""
    names = {price.product_id: price.product.name for price in prices if _PRODUCT_FIELD.is_cached(price)}
    missing = {price.product_id for price in prices} - set(names)
    if missing:
        names.update(Product.objects.filter(pk__in=missing).values_list("pk", "name"))
    return names


def items_validate(
    *, items: Sequence[ItemSpec], allow_one_time: bool = True, kept_price_ids: frozenset[int] = frozenset()
) -> ValidatedItems:
    """Check a list of items and turn it into snapshots.

    Recurring prices must share one currency and one cycle; licensed quantities are
    whole numbers from 1; a price appears once; archived prices are refused unless
    already on the subscription (`kept_price_ids`).
    """
    if not items:
        raise SubscriptionError(_("A subscription needs at least one item."), code="no_items")
    names = _product_names([spec.price for spec in items])
    recurring: list[ItemSnapshot] = []
    one_time: list[ItemSnapshot] = []
    seen: set[int] = set()
    for spec in items:
        price = spec.price
        label = price.nickname or names[price.product_id]
        if price.pk in seen:
            raise SubscriptionError(
                _("The price %(price)s appears twice: give one item with the total quantity.") % {"price": label},
                code="duplicate_price",
            )
        seen.add(price.pk)
        if not price.active and price.pk not in kept_price_ids:
            raise SubscriptionError(_("The price %(price)s is archived.") % {"price": label}, code="archived_price")
        metered = price.usage_type == Price.UsageType.METERED
        quantity = spec.quantity
        if not metered and (isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1):
            raise SubscriptionError(
                _("The quantity of %(price)s must be a whole number of at least 1, not %(quantity)s.")
                % {"price": label, "quantity": quantity},
                code="invalid_quantity",
            )
        if not metered:
            check_quantity(quantity, field="quantity")
        snapshot = item_snapshot(price=price, quantity=1 if metered else quantity, product_name=names[price.product_id])
        if price.type == Price.Type.ONE_TIME:
            if not allow_one_time:
                raise SubscriptionError(
                    _("%(price)s is a one-time price: add it as an invoice item instead.") % {"price": label},
                    code="one_time_price",
                )
            one_time.append(snapshot)
        else:
            recurring.append(snapshot)
    if not recurring:
        raise SubscriptionError(_("A subscription needs at least one recurring price."), code="no_recurring_price")
    currencies = {snapshot.price.currency for snapshot in recurring + one_time}
    if len(currencies) > 1:
        raise SubscriptionError(
            _("All prices of a subscription must be in one currency; these are in %(currencies)s.")
            % {"currencies": ", ".join(sorted(currencies))},
            code="mixed_currencies",
        )
    cycles = {cycle_spec(snapshot.price.cycle) for snapshot in recurring}
    if len(cycles) > 1:
        raise SubscriptionError(
            _("All recurring prices of a subscription must bill on the same cycle; these bill %(cycles)s.")
            % {"cycles": ", ".join(sorted(cycle.describe() for cycle in cycles))},
            code="mixed_cycles",
        )
    return ValidatedItems(
        recurring=tuple(recurring), one_time=tuple(one_time), currency=currencies.pop(), cycle=cycles.pop()
    )


# -- shared helpers ------------------------------------------------------------------


def instant(*, at: datetime | None, customer: Any) -> datetime:
    """`at` (default: the customer's clock), in UTC, truncated to the second."""
    if at is None:
        at = clock.now(customer=customer)
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("billing instants must be timezone-aware")
    return at.astimezone(UTC).replace(microsecond=0)


def subscription_lock(subscription: Subscription) -> Subscription:
    """The subscription's row, locked until the transaction ends, with its customer and coupon."""
    return (
        subscription_qs_for_update()
        .select_related("customer__brand", "customer__test_clock", "coupon")
        .prefetch_related("coupon__applies_to")
        .get(pk=subscription.pk)
    )


def subscription_event(
    *, type: str, subscription: Subscription, at: datetime, acting_user: Any = None, **data: Any
) -> None:
    event_record(
        type=type,
        object_type="subscription",
        object_id=subscription.pk,
        customer_id=subscription.customer_id,
        occurred_at=at,
        data={"subscription": subscription.pk, "status": subscription.status, **data},
        acting_user=acting_user,
    )


def _set_status(subscription: Subscription, target: str) -> str:
    previous = subscription.status
    assert_transition(previous, target)
    subscription.status = target
    return previous


def invoice_issue(*, draft: DraftInvoice, customer: Any, at: datetime, acting_user: Any = None) -> Any:
    """Create `draft` and finalize it at once (number assigned, pending items consumed)."""
    from invoices.services.finalize import invoice_finalize

    invoice = invoice_create(draft=draft, at=at, customer=customer)
    return invoice_finalize(invoice=invoice, at=at, acting_user=acting_user)


def balance_credit(*, customer: Any, currency: str, amount: int, description: str, at: datetime) -> None:
    """Credit `amount` (> 0) to the customer's balance: it pays their next invoices."""
    from invoices.models import BalanceTransaction
    from invoices.services.balance import balance_transaction_create

    balance_transaction_create(
        customer_id=customer.pk,
        currency=currency,
        amount=amount,
        kind=BalanceTransaction.Kind.PRORATION_CREDIT,
        description=description,
        at=at,
    )


def subscription_copy(subscription: Subscription, **fields: Any) -> Subscription:
    """An unsaved copy of `subscription` with other field values, to build drafts before saving."""
    clone = copy.copy(subscription)
    for name, value in fields.items():
        setattr(clone, name, value)
    return clone


def change_record(
    *,
    subscription: Subscription,
    kind: str,
    at: datetime,
    items_before: Sequence[ItemSnapshot],
    items_after: Sequence[ItemSnapshot],
    mrr_before: int,
    mrr_after: int,
    acting_user: Any,
    proration_mode: str = "",
    proration_amount: int = 0,
) -> SubscriptionChange:
    return SubscriptionChange.objects.create(
        subscription=subscription,
        kind=kind,
        effective_at=at,
        items_before=[item.as_json() for item in items_before],
        items_after=[item.as_json() for item in items_after],
        mrr_before=mrr_before,
        mrr_after=mrr_after,
        proration_mode=proration_mode,
        proration_amount=proration_amount,
        acting_user=acting_user if getattr(acting_user, "is_authenticated", False) else None,
    )


def _advance_discount_counter(subscription: Subscription) -> None:
    subscription.discount_periods_applied = discount_counter_after_billing(
        coupon=subscription.coupon if subscription.coupon_id else None,
        periods_applied=subscription.discount_periods_applied,
    )


def _trial_end(*, at: datetime, days: int, tz: str) -> datetime:
    # Calendar days in the customer's zone: a 14-day trial ends at the same wall-clock time.
    return next_boundary(CycleSpec.every(days, "day"), anchor=at, tz=tz, after=at)


# -- create --------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def subscription_create(
    *,
    customer: Any,
    items: Sequence[ItemSpec],
    at: datetime | None = None,
    trial_days: int | None = None,
    billing_cycle_anchor: datetime | None = None,
    coupon: Any = None,
    promotion_code: str | None = None,
    collection_method: str = Subscription.CollectionMethod.CHARGE_AUTOMATICALLY,
    days_until_due: int | None = None,
    trial_end_behavior: str = Subscription.TrialEndBehavior.CREATE_INVOICE,
    metadata: dict[str, Any] | None = None,
    acting_user: Any = None,
) -> Subscription:
    """Subscribe `customer` to `items` and issue the first invoice.

    `trial_days` defaults to the longest trial of the recurring prices (0: no trial).
    One-time prices become invoice items on the first invoice. Without a trial the
    first invoice bills the first period in advance (prorated up to an explicit
    anchor) with the discount; with one it is a zero invoice for the trial.
    `collection_method="send_invoice"` gives net-`days_until_due` terms (default 30).
    """
    from billing.services.modes import modes_check

    modes_check(livemode=customer.livemode, objects=[*(spec.price for spec in items), coupon])
    at = instant(at=at, customer=customer)
    validated = items_validate(items=items)
    if validated.currency != customer.currency:
        raise CustomerCurrencyMismatch(
            _("%(customer)s is billed in %(currency)s; these prices are in %(prices)s.")
            % {"customer": customer, "currency": customer.currency, "prices": validated.currency},
            code="customer_currency",
        )
    tz = customer.timezone
    if collection_method == Subscription.CollectionMethod.SEND_INVOICE:
        days_until_due = DEFAULT_DAYS_UNTIL_DUE if days_until_due is None else days_until_due
    elif collection_method == Subscription.CollectionMethod.CHARGE_AUTOMATICALLY:
        if days_until_due is not None:
            raise SubscriptionError(
                _("Payment terms (days until due) only apply to invoices sent for payment."), code="terms"
            )
    else:
        raise SubscriptionError(_("Unknown collection method %(method)s.") % {"method": collection_method})
    if trial_days is None:
        trial_days = max(snapshot.price.trial_days for snapshot in validated.recurring)
    if isinstance(trial_days, bool) or not isinstance(trial_days, int) or not 0 <= trial_days <= MAX_TRIAL_DAYS:
        raise SubscriptionError(
            _("A trial lasts from 0 to %(max)s days.") % {"max": MAX_TRIAL_DAYS}, code="invalid_trial"
        )
    if trial_end_behavior not in Subscription.TrialEndBehavior.values:
        raise SubscriptionError(
            _("Unknown trial end behaviour %(value)s.") % {"value": trial_end_behavior}, code="trial_end_behavior"
        )
    if billing_cycle_anchor is not None and billing_cycle_anchor.utcoffset() is None:
        raise ValueError("billing_cycle_anchor must be timezone-aware")

    trial_end = _trial_end(at=at, days=trial_days, tz=tz) if trial_days else None
    first_billed = trial_end or at
    anchor = (billing_cycle_anchor or first_billed).astimezone(UTC).replace(microsecond=0)
    try:
        nominal = period_containing(validated.cycle, anchor=anchor, tz=tz, at=first_billed)
    except CycleSpecError as error:
        raise SubscriptionError(str(error), code="invalid_cycle") from error
    period_end = trial_end or nominal.end

    promotion = None
    if promotion_code:
        promotion = promotion_code_resolve(code=promotion_code, customer=customer, at=at)
        if coupon is not None and coupon.pk != promotion.coupon_id:
            raise SubscriptionError(_("Give a coupon or a promotion code, not both."), code="coupon_and_code")
        coupon = promotion.coupon

    subscription = Subscription.objects.create(
        customer=customer,
        status=Status.TRIALING if trial_end else Status.ACTIVE,
        currency=validated.currency,
        cycle=validated.cycle.to_dict(),
        billing_cycle_anchor=anchor,
        current_period_start=at,
        current_period_end=period_end,
        collection_method=collection_method,
        days_until_due=days_until_due,
        trial_start=at if trial_end else None,
        trial_end=trial_end,
        trial_end_behavior=trial_end_behavior,
        coupon=coupon,
        promotion_code=promotion,
        metadata=metadata or {},
    )
    SubscriptionItem.objects.bulk_create(
        [
            SubscriptionItem(subscription=subscription, price=snapshot.price, quantity=snapshot.quantity)
            for snapshot in validated.recurring
        ]
    )
    if coupon is not None:
        coupon_redeem(
            coupon=coupon,
            customer=customer,
            at=at,
            currency=validated.currency,
            product_ids={snapshot.price.product_id for snapshot in validated.recurring},
            promotion_code=promotion,
            subscription_id=subscription.pk,
            acting_user=acting_user,
        )
        subscription.coupon = coupon
    for snapshot in validated.one_time:
        InvoiceItem.objects.create(
            customer=customer,
            subscription=subscription,
            price=snapshot.price,
            description=snapshot.label,
            quantity=snapshot.quantity,
            amount=snapshot.full_amount(),
            currency=snapshot.price.currency,
            tax_behavior=snapshot.price.tax_behavior,
        )

    pending = pending_invoice_items(subscription=subscription)
    if trial_end:
        draft = DraftInvoice(
            customer_id=customer.pk,
            currency=subscription.currency,
            billing_reason="subscription_create",
            lines=tuple(trial_lines(items=validated.recurring, period=Period(start=at, end=trial_end)))
            + tuple(pending_item_line(item) for item in pending),
            subscription_id=subscription.pk,
            period_start=at,
            period_end=trial_end,
            collection_method=collection_method,
            days_until_due=days_until_due,
        )
    else:
        draft = renewal_draft(
            subscription=subscription,
            tz=tz,
            items=validated.recurring,
            period_start=at,
            period_end=period_end,
            usage={},
            usage_items=(),
            pending_items=pending,
            discounts=discounts_for_period(subscription=subscription),
            billing_reason="subscription_create",
        )
        _advance_discount_counter(subscription)
        subscription.save(update_fields=["discount_periods_applied", "updated_at"])

    mrr_after = mrr_for(
        items=validated.recurring,
        cycle=validated.cycle,
        currency=subscription.currency,
        discounts=[draft_discount.discount for draft_discount in recurring_discounts(subscription=subscription)],
    )
    change_record(
        subscription=subscription,
        kind=SubscriptionChange.Kind.CREATE,
        at=at,
        items_before=(),
        items_after=validated.recurring,
        mrr_before=0,
        mrr_after=mrr_after,
        acting_user=acting_user,
    )
    subscription_event(
        type="customer.subscription.created",
        subscription=subscription,
        at=at,
        acting_user=acting_user,
        items=[snapshot.as_json() for snapshot in validated.recurring],
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        trial_end=trial_end,
    )
    if trial_end:
        subscription_event(
            type="customer.subscription.trial_started",
            subscription=subscription,
            at=at,
            acting_user=acting_user,
            trial_end=trial_end,
        )
    invoice_issue(draft=draft, customer=customer, at=at, acting_user=acting_user)
    return subscription


# -- status changes ---------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def subscription_transition(
    *,
    subscription: Subscription,
    to_status: str,
    at: datetime | None = None,
    reason: str = "",
    acting_user: Any = None,
) -> Subscription:
    """Move the subscription to `to_status` if the state table allows it (payments and dunning use this).

    Cancel, pause and resume have their own services, which also settle money and
    periods; this one only changes the status (and the end and pause timestamps).
    """
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    previous = _set_status(locked, to_status)
    if to_status == Status.CANCELED:
        locked.canceled_at = locked.canceled_at or at
        locked.ended_at = at
        locked.cancel_at_period_end = False
        locked.cancellation_reason = reason[:200] or locked.cancellation_reason
    elif to_status == Status.PAUSED:
        locked.paused_at = at
    elif previous == Status.PAUSED:
        locked.paused_at = None
        locked.resumes_at = None
    locked.save()
    subscription_event(
        type="customer.subscription.deleted" if to_status == Status.CANCELED else "customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        reason=reason,
    )
    return locked


def _owed_so_far_draft(
    *,
    subscription: Subscription,
    items: Sequence[ItemSnapshot],
    usage_items: Sequence[ItemSnapshot],
    at: datetime,
    new_period: Period | None,
    billing_reason: str,
) -> DraftInvoice:
    """An invoice at `at` for usage since the current period started and pending items,
    plus `items` in advance for `new_period` when one starts (resume, early trial end)."""
    usage_period = (
        Period(start=subscription.current_period_start, end=at) if at > subscription.current_period_start else None
    )
    metered = [item for item in usage_items if item.metered] if usage_period is not None else []
    usage = usage_for_period(subscription=subscription, items=metered, start=subscription.current_period_start, end=at)
    return renewal_draft(
        subscription=subscription,
        tz=subscription.customer.timezone,
        items=items,
        usage_items=metered,
        period_start=new_period.start if new_period else at,
        period_end=new_period.end if new_period else at,
        usage=usage,
        usage_period=usage_period,
        pending_items=pending_invoice_items(subscription=subscription),
        discounts=discounts_for_period(subscription=subscription),
        recurring=new_period is not None,
        billing_reason=billing_reason,
    )


@transaction.atomic(savepoint=False)
def subscription_cancel(
    *,
    subscription: Subscription,
    at: datetime | None = None,
    at_period_end: bool,
    prorate: bool = False,
    reason: str = "",
    acting_user: Any = None,
) -> Subscription:
    """Cancel now, or at the end of the current period.

    Now: status canceled, ended at `at`; with `prorate`, the unused part of the period
    (what was paid for it, after a percent discount) is credited to the customer's
    balance; pending items and usage so far are invoiced in a final invoice.
    At period end: only `cancel_at_period_end` is set (undo with
    `subscription_cancel_undo`); the subscription stays active until the boundary.
    """
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    assert_transition(locked.status, Status.CANCELED)
    if at_period_end:
        if prorate:
            raise SubscriptionError(
                _("Nothing is prorated when a subscription ends with its period."), code="prorate_at_period_end"
            )
        locked.cancel_at_period_end = True
        locked.canceled_at = at
        locked.cancellation_reason = reason[:200]
        locked.save(update_fields=["cancel_at_period_end", "canceled_at", "cancellation_reason", "updated_at"])
        subscription_event(
            type="customer.subscription.updated",
            subscription=locked,
            at=at,
            acting_user=acting_user,
            cancel_at_period_end=True,
            cancel_at=locked.current_period_end,
            reason=reason,
        )
        return locked
    return _cancel_now(subscription=locked, at=at, prorate=prorate, reason=reason, acting_user=acting_user)


def _cancel_now(
    *, subscription: Subscription, at: datetime, prorate: bool, reason: str, acting_user: Any
) -> Subscription:
    if at < subscription.current_period_start:
        raise SubscriptionError(_("A subscription cannot be canceled before its current period started."))
    items = subscription_items_snapshot(subscription=subscription)
    mrr_before = mrr_of(subscription=subscription, items=items)
    previous = _set_status(subscription, Status.CANCELED)
    credit = 0
    if prorate and previous != Status.TRIALING and at < subscription.current_period_end:
        discounts = current_period_discounts(subscription=subscription)
        lines = cancellation_credit(
            items=item_charges(items, discount=discounts[0].discount if discounts else None),
            period_start=subscription.current_period_start,
            period_end=subscription.current_period_end,
            at=at,
        )
        credit = -sum(line.amount for line in lines)
        if credit > 0:
            balance_credit(
                customer=subscription.customer,
                currency=subscription.currency,
                amount=credit,
                description=_("Unused time after cancellation of subscription #%(pk)s") % {"pk": subscription.pk},
                at=at,
            )
    final = _owed_so_far_draft(
        subscription=subscription,
        items=(),
        usage_items=items,
        at=at,
        new_period=None,
        billing_reason="subscription_update",
    )
    # A final invoice only when something is owed: pending items, or usage.
    if any(line.amount or line.kind != "usage" for line in final.lines):
        invoice_issue(draft=final, customer=subscription.customer, at=at, acting_user=acting_user)
    subscription.canceled_at = subscription.canceled_at or at
    subscription.ended_at = at
    subscription.cancel_at_period_end = False
    subscription.cancellation_reason = reason[:200] or subscription.cancellation_reason
    subscription.save()
    subscription.scheduled_changes.filter(status=ScheduledChange.Status.PENDING).update(
        status=ScheduledChange.Status.CANCELED
    )
    change_record(
        subscription=subscription,
        kind=SubscriptionChange.Kind.CANCEL,
        at=at,
        items_before=items,
        items_after=items,
        mrr_before=mrr_before,
        mrr_after=0,
        acting_user=acting_user,
        proration_mode="credit" if prorate else "",
        proration_amount=-credit,
    )
    subscription_event(
        type="customer.subscription.deleted",
        subscription=subscription,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        reason=reason,
        credited=credit,
    )
    return subscription


@transaction.atomic(savepoint=False)
def subscription_cancel_undo(*, subscription: Subscription, acting_user: Any = None) -> Subscription:
    """Keep a subscription that was set to cancel at period end."""
    locked = subscription_lock(subscription)
    at = instant(at=None, customer=locked.customer)
    if locked.status == Status.CANCELED or not locked.cancel_at_period_end:
        raise SubscriptionError(_("This subscription is not set to cancel at period end."), code="not_canceling")
    locked.cancel_at_period_end = False
    locked.canceled_at = None
    locked.cancellation_reason = ""
    locked.save(update_fields=["cancel_at_period_end", "canceled_at", "cancellation_reason", "updated_at"])
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        cancel_at_period_end=False,
    )
    return locked


# -- pause and resume -------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def subscription_pause(
    *,
    subscription: Subscription,
    at: datetime | None = None,
    resumes_at: datetime | None = None,
    acting_user: Any = None,
) -> Subscription:
    """Stop billing from `at` (no credit for the rest of the period); resume by hand or at `resumes_at`."""
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    if resumes_at is not None and resumes_at <= at:
        raise SubscriptionError(_("A paused subscription resumes after it is paused."), code="resumes_at")
    items = subscription_items_snapshot(subscription=locked)
    mrr_before = mrr_of(subscription=locked, items=items)
    previous = _set_status(locked, Status.PAUSED)
    locked.paused_at = at
    locked.resumes_at = resumes_at
    locked.save(update_fields=["status", "paused_at", "resumes_at", "updated_at"])
    change_record(
        subscription=locked,
        kind=SubscriptionChange.Kind.PAUSE,
        at=at,
        items_before=items,
        items_after=items,
        mrr_before=mrr_before,
        mrr_after=0,
        acting_user=acting_user,
    )
    subscription_event(
        type="customer.subscription.paused",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        resumes_at=resumes_at,
    )
    return locked


def resume_period(*, subscription: Subscription, tz: str, at: datetime) -> Period:
    """The period a resume at `at` starts: anchored at `at` (calendar cycles keep their dates)."""
    return Period(start=at, end=next_boundary(cycle_spec(subscription.cycle), anchor=at, tz=tz, after=at))


def _start_new_period(
    *,
    subscription: Subscription,
    items: Sequence[ItemSnapshot],
    usage_items: Sequence[ItemSnapshot],
    at: datetime,
    acting_user: Any,
) -> Subscription:
    """Re-anchor the subscription at `at` and bill the new period in advance with what is owed so far."""
    period = resume_period(subscription=subscription, tz=subscription.customer.timezone, at=at)
    if renewal_exists(subscription_id=subscription.pk, period_start=period.start):
        # Paused and resumed again at the same instant (a test clock stands still): that
        # period is already billed once, and billing it twice is what the database forbids.
        raise SubscriptionConflict(
            _("This subscription already started a period at this instant; it can start a new one later."),
            code="period_already_billed",
        )
    draft = _owed_so_far_draft(
        subscription=subscription_copy(subscription, billing_cycle_anchor=at),
        items=items,
        usage_items=usage_items,
        at=at,
        new_period=period,
        billing_reason="subscription_cycle",
    )
    subscription.billing_cycle_anchor = at
    subscription.current_period_start = period.start
    subscription.current_period_end = period.end
    _advance_discount_counter(subscription)
    subscription.save()
    invoice_issue(draft=draft, customer=subscription.customer, at=at, acting_user=acting_user)
    return subscription


@transaction.atomic(savepoint=False)
def subscription_resume(
    *, subscription: Subscription, at: datetime | None = None, acting_user: Any = None
) -> Subscription:
    """Resume a paused subscription at `at`: a new period starts and is invoiced at once."""
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    if locked.status != Status.PAUSED:
        raise SubscriptionError(_("Only a paused subscription can resume."), code="not_paused")
    if locked.paused_at is not None and at < locked.paused_at:
        raise SubscriptionError(_("A subscription resumes after it was paused."), code="resume_before_pause")
    previous = _set_status(locked, Status.ACTIVE)
    items = subscription_items_snapshot(subscription=locked)
    locked.paused_at = None
    locked.resumes_at = None
    _start_new_period(subscription=locked, items=items, usage_items=items, at=at, acting_user=acting_user)
    mrr_after = mrr_of(subscription=locked, items=items)
    change_record(
        subscription=locked,
        kind=SubscriptionChange.Kind.RESUME,
        at=at,
        items_before=items,
        items_after=items,
        mrr_before=0,
        mrr_after=mrr_after,
        acting_user=acting_user,
    )
    subscription_event(
        type="customer.subscription.resumed",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        current_period_start=locked.current_period_start,
        current_period_end=locked.current_period_end,
    )
    return locked


# -- trials -------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def subscription_end_trial(
    *,
    subscription: Subscription,
    at: datetime | None = None,
    has_payment_method: bool = True,
    acting_user: Any = None,
) -> Subscription:
    """End the trial at `at`.

    At or after `trial_end` (the billing run): the status changes and the run's renewal
    at `current_period_end` (= trial end) issues the first paid invoice. Before it (the
    customer upgrades early): a new period starts at `at` and is invoiced at once.
    A customer without a payment method on automatic collection gets the subscription's
    `trial_end_behavior`: invoice anyway (active), pause, or cancel.
    """
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    if locked.status != Status.TRIALING:
        raise SubscriptionError(_("This subscription is not in a trial."), code="not_trialing")
    trial_end = locked.trial_end or locked.current_period_end
    ends_early = at < trial_end
    behavior = Subscription.TrialEndBehavior.CREATE_INVOICE
    if not has_payment_method and locked.collection_method == Subscription.CollectionMethod.CHARGE_AUTOMATICALLY:
        behavior = locked.trial_end_behavior
    if behavior == Subscription.TrialEndBehavior.CANCEL:
        return _cancel_now(
            subscription=locked,
            at=min(at, trial_end),
            prorate=False,
            reason="trial ended without a payment method",
            acting_user=acting_user,
        )
    if behavior == Subscription.TrialEndBehavior.PAUSE:
        previous = _set_status(locked, Status.PAUSED)
        locked.paused_at = min(at, trial_end)
        locked.save(update_fields=["status", "paused_at", "updated_at"])
        subscription_event(
            type="customer.subscription.paused",
            subscription=locked,
            at=at,
            acting_user=acting_user,
            previous_status=previous,
            reason="trial ended without a payment method",
        )
        return locked
    previous = _set_status(locked, Status.ACTIVE)
    if ends_early:
        locked.trial_end = at
        items = subscription_items_snapshot(subscription=locked)
        _start_new_period(subscription=locked, items=items, usage_items=(), at=at, acting_user=acting_user)
    else:
        locked.save(update_fields=["status", "updated_at"])
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        trial_end=locked.trial_end,
    )
    return locked


# -- before a renewal ----------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def subscription_prepare_renewal(
    *, subscription: Subscription, at: datetime, has_payment_method: bool = True
) -> Subscription | None:
    """What happens at a period boundary before the billing run bills the next period.

    For a due subscription (current_period_end <= at): cancel it if it was set to
    cancel at period end (final invoice for usage and pending items), else apply a
    scheduled change effective by the boundary, and end a trial that ends there.
    Returns the (locked, fresh) subscription when the run should now bill its next
    period, or None when it should not (canceled, paused, not due).
    """
    locked = subscription_lock(subscription)
    boundary = locked.current_period_end
    if boundary > at or locked.status not in BILLABLE_STATUSES:
        return None
    if locked.cancel_at_period_end:
        _cancel_now(
            subscription=locked, at=boundary, prorate=False, reason=locked.cancellation_reason, acting_user=None
        )
        return None
    scheduled_changes_apply_due(subscription=locked, at=boundary)
    locked = subscription_lock(locked)
    if locked.status == Status.TRIALING and (locked.trial_end is None or locked.trial_end <= boundary):
        locked = subscription_end_trial(subscription=locked, at=boundary, has_payment_method=has_payment_method)
    return locked if locked.status in BILLABLE_STATUSES else None


# -- items ------------------------------------------------------------------------------


def items_apply(*, subscription: Subscription, before: Sequence[ItemSnapshot], after: Sequence[ItemSnapshot]) -> None:
    """Make the subscription's item rows match `after` (kept prices keep their row)."""
    quantity_before = {item.price.pk: item.quantity for item in before}
    SubscriptionItem.objects.filter(subscription_id=subscription.pk).exclude(
        price_id__in=[item.price.pk for item in after]
    ).delete()
    for item in after:
        if item.price.pk in quantity_before and quantity_before[item.price.pk] != item.quantity:
            SubscriptionItem.objects.filter(subscription_id=subscription.pk, price_id=item.price.pk).update(
                quantity=item.quantity
            )
    SubscriptionItem.objects.bulk_create(
        [
            SubscriptionItem(subscription_id=subscription.pk, price=item.price, quantity=item.quantity)
            for item in after
            if item.price.pk not in quantity_before
        ]
    )


def removed_meter_usage_items(
    *, subscription: Subscription, before: Sequence[ItemSnapshot], after: Sequence[ItemSnapshot], at: datetime
) -> list[InvoiceItem]:
    """Unsaved pending items for the usage so far of metered prices that `after` drops.

    Their usage since the period started would otherwise never be billed: the renewal
    only bills the metered items the subscription still has. Trial usage is free.
    """
    kept = {item.price.pk for item in after}
    removed = [item for item in before if item.metered and item.price.pk not in kept]
    start = subscription.current_period_start
    in_trial = subscription.trial_end is not None and at <= subscription.trial_end
    if not removed or in_trial or at <= start:
        return []
    usage = usage_for_period(subscription=subscription, items=removed, start=start, end=at)
    rows = []
    for item in removed:
        quantity = usage.get(UsageWindow(subscription.customer_id, item.price.meter_id, start, at), Decimal(0))
        amount = usage_charge_amount(price=item.price, quantity=quantity)
        if not amount:
            continue
        rows.append(
            InvoiceItem(
                customer_id=subscription.customer_id,
                subscription_id=subscription.pk,
                price=item.price,
                description=_("%(item)s (usage: %(quantity)s)")
                % {"item": item.label, "quantity": quantity.normalize()},
                quantity=1,
                amount=amount,
                currency=subscription.currency,
                period_start=start,
                period_end=at,
                tax_behavior=item.price.tax_behavior,
                metadata={"kind": "usage", "usage": str(quantity), "meter": item.price.meter_id},
            )
        )
    return rows


def items_changed_event_data(before: Sequence[ItemSnapshot], after: Sequence[ItemSnapshot]) -> dict[str, Any]:
    return {"items": [item.as_json() for item in after], "previous_items": [item.as_json() for item in before]}


# -- scheduled changes --------------------------------------------------------------------

_CHANGEABLE = (Status.ACTIVE, Status.TRIALING, Status.PAST_DUE, Status.UNPAID)


def changeable_check(subscription: Subscription) -> None:
    if subscription.status not in _CHANGEABLE:
        raise SubscriptionError(
            _("A %(status)s subscription cannot change its items.") % {"status": subscription.get_status_display()},
            code="not_changeable",
        )


@transaction.atomic(savepoint=False)
def subscription_schedule_change(
    *,
    subscription: Subscription,
    items: Sequence[ItemSpec],
    effective_at: datetime | None = None,
    acting_user: Any = None,
) -> ScheduledChange:
    """Change the items at `effective_at` (default: the end of the current period), without proration.

    A subscription has at most one pending change: scheduling another replaces it.
    A change of billing cycle can only be scheduled at the end of the current period,
    where the new cycle's first period starts (anchored there).
    """
    from billing.services.modes import modes_check

    locked = subscription_lock(subscription)
    now = instant(at=None, customer=locked.customer)
    changeable_check(locked)
    modes_check(livemode=locked.customer.livemode, objects=[spec.price for spec in items])
    before = subscription_items_snapshot(subscription=locked)
    validated = items_validate(
        items=items, allow_one_time=False, kept_price_ids=frozenset(item.price.pk for item in before)
    )
    if validated.currency != locked.currency:
        raise SubscriptionError(
            _("The new prices are in %(new)s; this subscription is in %(currency)s.")
            % {"new": validated.currency, "currency": locked.currency},
            code="currency_change",
        )
    effective_at = instant(at=effective_at or locked.current_period_end, customer=locked.customer)
    if effective_at < now:
        raise SubscriptionError(_("A scheduled change takes effect in the future."), code="effective_in_past")
    if validated.cycle != cycle_spec(locked.cycle) and effective_at != locked.current_period_end:
        raise SubscriptionError(
            _("A change of billing cycle is scheduled for the end of the current period."), code="cycle_mid_period"
        )
    replaced = list(locked.scheduled_changes.filter(status=ScheduledChange.Status.PENDING))
    for old in replaced:
        old.status = ScheduledChange.Status.CANCELED
        old.save(update_fields=["status"])
        _schedule_event("subscription_schedule.canceled", old, locked, now, acting_user)
    change = ScheduledChange.objects.create(
        subscription=locked,
        effective_at=effective_at,
        items=[item.as_json() for item in validated.recurring],
    )
    _schedule_event("subscription_schedule.created", change, locked, now, acting_user)
    return change


def _schedule_event(
    type: str, change: ScheduledChange, subscription: Subscription, at: datetime, acting_user: Any
) -> None:
    event_record(
        type=type,
        object_type="scheduled_change",
        object_id=change.pk,
        customer_id=subscription.customer_id,
        occurred_at=at,
        data={
            "subscription": subscription.pk,
            "effective_at": change.effective_at,
            "items": change.items,
            "status": change.status,
        },
        acting_user=acting_user,
    )


@transaction.atomic(savepoint=False)
def scheduled_change_cancel(*, scheduled_change: ScheduledChange, acting_user: Any = None) -> ScheduledChange:
    locked = subscription_lock(scheduled_change.subscription)
    change = ScheduledChange.objects.get(pk=scheduled_change.pk)
    if change.status != ScheduledChange.Status.PENDING:
        raise SubscriptionError(_("This scheduled change is no longer pending."), code="not_pending")
    change.status = ScheduledChange.Status.CANCELED
    change.save(update_fields=["status"])
    _schedule_event(
        "subscription_schedule.canceled", change, locked, instant(at=None, customer=locked.customer), acting_user
    )
    return change


@transaction.atomic(savepoint=False)
def scheduled_changes_apply_due(*, subscription: Subscription, at: datetime) -> ScheduledChange | None:
    """Apply the pending change effective by `at`, without proration (billing run).

    The items change at the change's `effective_at`; usage so far of a metered price
    it removes becomes a pending item. A new billing cycle is anchored at
    `effective_at`. The given `subscription` instance is updated too (cycle, anchor),
    so a caller holding it computes the next period with the new cycle.
    """
    locked = subscription_lock(subscription)
    change = locked.scheduled_changes.filter(status=ScheduledChange.Status.PENDING, effective_at__lte=at).first()
    if change is None:
        return None
    from billing.services.upcoming import scheduled_change_items

    effective_at = change.effective_at
    before = subscription_items_snapshot(subscription=locked)
    after = scheduled_change_items(change)
    mrr_before = mrr_of(subscription=locked, items=before)
    usage_items = removed_meter_usage_items(subscription=locked, before=before, after=after, at=effective_at)
    InvoiceItem.objects.bulk_create(usage_items)
    items_apply(subscription=locked, before=before, after=after)
    new_cycle = cycle_spec(after[0].price.cycle)
    if new_cycle != cycle_spec(locked.cycle):
        for instance in (locked, subscription):
            instance.cycle = new_cycle.to_dict()
            instance.billing_cycle_anchor = effective_at
        locked.save(update_fields=["cycle", "billing_cycle_anchor", "updated_at"])
    change.status = ScheduledChange.Status.APPLIED
    change.save(update_fields=["status"])
    change_record(
        subscription=locked,
        kind=SubscriptionChange.Kind.SCHEDULED,
        at=effective_at,
        items_before=before,
        items_after=after,
        mrr_before=mrr_before,
        mrr_after=mrr_of(subscription=locked, items=after),
        acting_user=None,
        proration_mode="none",
    )
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=effective_at,
        scheduled_change=change.pk,
        **items_changed_event_data(before, after),
    )
    _schedule_event("subscription_schedule.completed", change, locked, effective_at, None)
    return change
