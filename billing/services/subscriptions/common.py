"""What every subscription service shares: errors, item validation, the row lock, events,
the change record, invoicing and balance hand-offs, item application.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from django.utils.translation import gettext as _

from billing.cycles import CycleSpec, Period
from billing.entitlements.services import entitlements_refresh
from billing.errors import CustomerCurrencyMismatch as CustomerCurrencyMismatch
from billing.errors import SubscriptionConflict as SubscriptionConflict
from billing.errors import SubscriptionError
from billing.limits import check_quantity
from billing.locks import subscription_qs_for_update
from billing.models import (
    InvoiceItem,
    Price,
    Product,
    Subscription,
    SubscriptionChange,
    SubscriptionItem,
)
from billing.selectors import (
    ItemSnapshot,
    cycle_spec,
    item_snapshot,
    mrr_for,
    subscription_items_snapshot,
)
from billing.services.coupons import (
    discount_counter_after_billing,
    recurring_discounts,
)
from billing.services.upcoming import arrears_start, period_share, usage_for_period
from billing.services.usage import usage_charge_amount, usage_key
from billing.states import assert_transition
from config import clock
from config.events.log import event_record
from config.money import round_fraction
from config.types import ActingUser, JsonDict
from customers.models import Customer
from invoices.ledger.postings import post_balance_transaction
from invoices.models import BalanceTransaction, Invoice
from invoices.services.balance import balance_transaction_create
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftInvoice

Status = Subscription.Status


MAX_TRIAL_DAYS = 730


DEFAULT_DAYS_UNTIL_DUE = 30


def mrr_of(*, subscription: Subscription, items: Sequence[ItemSnapshot] | None = None) -> int:
    """The subscription's MRR in its currency, whatever its status.

    Discounts counted: a `forever` coupon, and a `repeating` one while it still has
    periods to run (including the current one); a `once` coupon is a one-off and is
    not. Reports decide which statuses count (trialing, paused and canceled
    subscriptions usually do not).
    """
    if items is None:
        items = subscription_items_snapshot(subscription=subscription)
    return mrr_for(
        items=items,
        cycle=cycle_spec(subscription.cycle),
        currency=subscription.currency,
        discounts=[draft.discount for draft in recurring_discounts(subscription=subscription)],
    )


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


def instant(*, at: datetime | None, customer: Customer) -> datetime:
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
    *, type: str, subscription: Subscription, at: datetime, acting_user: ActingUser = None, **data: object
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
    # Every subscription change records its event here, under the subscription's row lock and in
    # the change's transaction: the one place the entitlements projection follows the change.
    entitlements_refresh(subscription_ids=[subscription.pk], at=at, acting_user=acting_user)


def _set_status(subscription: Subscription, target: str) -> str:
    previous = subscription.status
    assert_transition(previous, target)
    subscription.status = target
    return previous


def invoice_issue(*, draft: DraftInvoice, customer: Customer, at: datetime, acting_user: ActingUser = None) -> Invoice:
    """Create `draft` and finalize it at once (number assigned, pending items consumed)."""
    invoice = invoice_create(draft=draft, at=at, customer=customer)
    return invoice_finalize(invoice=invoice, at=at, acting_user=acting_user)


def balance_credit(*, customer: Customer, currency: str, amount: int, description: str, at: datetime) -> None:
    """Credit `amount` (> 0) to the customer's balance: it pays their next invoices."""
    entry = balance_transaction_create(
        customer_id=customer.pk,
        currency=currency,
        amount=amount,
        kind=BalanceTransaction.Kind.PRORATION_CREDIT,
        description=description,
        at=at,
    )
    post_balance_transaction(entry=entry)


def subscription_copy(subscription: Subscription, **fields: object) -> Subscription:
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
    acting_user: ActingUser,
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


def items_apply(*, subscription: Subscription, before: Sequence[ItemSnapshot], after: Sequence[ItemSnapshot]) -> None:
    """Make the subscription's item rows match `after` (kept prices keep their row)."""
    quantity_before = {item.price.pk: item.quantity for item in before}
    SubscriptionItem.objects.filter(subscription_id=subscription.pk).exclude(
        price_id__in=[item.price.pk for item in after]
    ).delete()
    for item in after:
        if item.price.pk in quantity_before and quantity_before[item.price.pk] != item.quantity:
            SubscriptionItem.objects.filter(subscription_id=subscription.pk, price_id=item.price.pk).update(
                quantity=item.quantity, arrears_from=item.arrears_from
            )
    SubscriptionItem.objects.bulk_create(
        [
            SubscriptionItem(
                subscription_id=subscription.pk,
                price=item.price,
                quantity=item.quantity,
                arrears_from=item.arrears_from,
            )
            for item in after
            if item.price.pk not in quantity_before
        ]
    )


# -- issue 16, cycles: items billed in arrears across a change ---------------------


def _changed_arrears(before: Sequence[ItemSnapshot], after: Sequence[ItemSnapshot]) -> list[ItemSnapshot]:
    """Arrears items of `before` that `after` removes or holds in another quantity."""
    kept = {(item.price.pk, item.quantity) for item in after}
    return [item for item in before if item.in_arrears and (item.price.pk, item.quantity) not in kept]


def arrears_carry(
    *, before: Sequence[ItemSnapshot], after: Sequence[ItemSnapshot], at: datetime
) -> tuple[ItemSnapshot, ...]:
    """`after`, where each arrears item that is new or changes quantity owes its time from `at`
    (an unchanged one keeps where its unbilled time started)."""
    held = {(item.price.pk, item.quantity): item for item in before}
    carried = []
    for item in after:
        previous = held.get((item.price.pk, item.quantity))
        if item.in_arrears:
            item = replace(item, arrears_from=previous.arrears_from if previous is not None else at)
        carried.append(item)
    return tuple(carried)


def arrears_restart_at(
    *, subscription: Subscription, items: Sequence[ItemSnapshot], at: datetime
) -> tuple[ItemSnapshot, ...]:
    """Arrears items owe their time from `at` on (a resume): the rows, and `items` as returned."""
    SubscriptionItem.objects.filter(
        subscription_id=subscription.pk, price__billing_timing=Price.BillingTiming.IN_ARREARS
    ).update(arrears_from=at)
    return tuple(replace(item, arrears_from=at) if item.in_arrears else item for item in items)


def arrears_used_items(
    *, subscription: Subscription, before: Sequence[ItemSnapshot], after: Sequence[ItemSnapshot], at: datetime
) -> list[InvoiceItem]:
    """Unsaved pending items for the time used so far of arrears items that `after` removes
    or changes: billed with the next invoice (or the immediate one with always_invoice), as
    the renewal only bills the items held when the period ends. Trial time is free."""
    rows = []
    tz = subscription.customer.timezone
    for item in _changed_arrears(before, after):
        period = Period(start=subscription.current_period_start, end=subscription.current_period_end)
        start = arrears_start(subscription=subscription, item=item, period=period)
        if start >= at:
            continue
        share = period_share(subscription=subscription, tz=tz, start=start, end=at)
        amount = round_fraction(item.full_amount() * share)
        if not amount:
            continue
        rows.append(
            InvoiceItem(
                customer_id=subscription.customer_id,
                subscription_id=subscription.pk,
                price=item.price,
                description=_("Time used on %(item)s (in arrears)") % {"item": item.label},
                quantity=item.quantity,
                amount=amount,
                currency=subscription.currency,
                period_start=start,
                period_end=at,
                tax_behavior=item.price.tax_behavior,
                metadata={"kind": "arrears", "item": item.key},
            )
        )
    return rows


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
        quantity = usage.get(
            usage_key(customer_id=subscription.customer_id, price=item.price, start=start, end=at), Decimal(0)
        )
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


def items_changed_event_data(before: Sequence[ItemSnapshot], after: Sequence[ItemSnapshot]) -> JsonDict:
    return {"items": [item.as_json() for item in after], "previous_items": [item.as_json() for item in before]}


_CHANGEABLE = (Status.ACTIVE, Status.TRIALING, Status.PAST_DUE, Status.UNPAID)


def changeable_check(subscription: Subscription) -> None:
    if subscription.status not in _CHANGEABLE:
        raise SubscriptionError(
            _("A %(status)s subscription cannot change its items.") % {"status": subscription.get_status_display()},
            code="not_changeable",
        )
