"""Adopting a subscription that another system (Stripe) has already billed for its current period.

`subscription_adopt` is `subscription_create` for a subscription that already exists
elsewhere: the current period (or trial) is given, not computed, and no first invoice is
issued -- the other system billed it. From the period's end on, Tarif's billing run renews
it like any other, so the anchor and the cycle must reproduce the given period end
(checked here: an import whose next renewal would land on another date is refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from django.db import transaction
from django.utils.translation import gettext as _

from billing.cycles import CycleSpecError, next_boundary
from billing.models import Coupon, Subscription, SubscriptionChange, SubscriptionDiscount, SubscriptionItem
from billing.services.coupons import coupon_redeem, discount_row_fields
from billing.services.modes import modes_check
from billing.services.subscriptions.common import (
    CustomerCurrencyMismatch,
    ItemSpec,
    Status,
    SubscriptionError,
    change_record,
    items_validate,
    mrr_of,
    subscription_event,
)
from config.types import ActingUser, JsonDict
from customers.models import Customer

ADOPTABLE_STATUSES = (Status.ACTIVE, Status.TRIALING, Status.PAST_DUE)


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC).replace(microsecond=0)


def subscription_adopt(
    *,
    customer: Customer,
    items: Sequence[ItemSpec],
    status: str,
    current_period_start: datetime,
    current_period_end: datetime,
    billing_cycle_anchor: datetime,
    trial_start: datetime | None = None,
    trial_end: datetime | None = None,
    coupon: Coupon | None = None,
    coupon_redeemed_at: datetime | None = None,
    discount_periods_applied: int = 0,
    collection_method: str = Subscription.CollectionMethod.CHARGE_AUTOMATICALLY,
    days_until_due: int | None = None,
    cancel_at_period_end: bool = False,
    metadata: JsonDict | None = None,
    acting_user: ActingUser = None,
) -> Subscription:
    """A subscription already billed up to `current_period_end` elsewhere; issues no invoice.

    `discount_periods_applied` counts the periods the coupon has already discounted (a
    `once` coupon used on the first invoice gives 1: the renewal is not discounted).
    The coupon is redeemed as of `coupon_redeemed_at` (when it was redeemed elsewhere).
    Validation runs before the transaction opens, so a refusal leaves the caller's transaction usable.
    """
    modes_check(livemode=customer.livemode, objects=[*(spec.price for spec in items), coupon])
    if status not in ADOPTABLE_STATUSES:
        raise SubscriptionError(
            _("Only active, trialing or past-due subscriptions can be adopted, not %(status)s.") % {"status": status},
            code="status",
        )
    validated = items_validate(items=items, allow_one_time=False)
    if validated.currency != customer.currency:
        raise CustomerCurrencyMismatch(
            _("%(customer)s is billed in %(currency)s; these prices are in %(prices)s.")
            % {"customer": customer, "currency": customer.currency, "prices": validated.currency},
            code="customer_currency",
        )
    start = _utc(current_period_start, "current_period_start")
    end = _utc(current_period_end, "current_period_end")
    anchor = _utc(billing_cycle_anchor, "billing_cycle_anchor")
    if end <= start:
        raise SubscriptionError(_("The current period must end after it starts."), code="period")
    if (trial_end is not None) != (status == Status.TRIALING):
        raise SubscriptionError(_("A trialing subscription needs a trial end, and only it."), code="invalid_trial")
    if trial_end is not None:
        if _utc(trial_end, "trial_end") != end:
            raise SubscriptionError(_("A trial's current period ends with the trial."), code="invalid_trial")
    else:
        try:
            expected = next_boundary(validated.cycle, anchor=anchor, tz=customer.timezone, after=start)
        except CycleSpecError as error:
            raise SubscriptionError(str(error), code="invalid_cycle") from error
        if expected != end:
            raise SubscriptionError(
                _("This cycle and anchor end the current period at %(expected)s, not %(end)s.")
                % {"expected": expected.isoformat(), "end": end.isoformat()},
                code="period_mismatch",
            )
    if collection_method == Subscription.CollectionMethod.CHARGE_AUTOMATICALLY:
        days_until_due = None
    with transaction.atomic(savepoint=False):
        subscription = Subscription.objects.create(
            customer=customer,
            status=status,
            currency=validated.currency,
            cycle=validated.cycle.to_dict(),
            billing_cycle_anchor=anchor,
            current_period_start=start,
            current_period_end=end,
            collection_method=collection_method,
            days_until_due=days_until_due,
            trial_start=_utc(trial_start, "trial_start") if trial_start else (start if trial_end else None),
            trial_end=end if trial_end else None,
            cancel_at_period_end=cancel_at_period_end,
            discount_periods_applied=discount_periods_applied if coupon is not None else 0,
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
                at=_utc(coupon_redeemed_at or start, "coupon_redeemed_at"),
                currency=validated.currency,
                product_ids={snapshot.price.product_id for snapshot in validated.recurring},
                subscription_id=subscription.pk,
                acting_user=acting_user,
            )
            subscription.coupon = coupon
            subscription.save(update_fields=["coupon", "updated_at"])
            # The discount rules read the subscription's discount rows (billing/discount_models.py):
            # the adopted coupon is its first, with the periods it already discounted elsewhere.
            SubscriptionDiscount.objects.create(
                subscription=subscription,
                position=0,
                **{
                    **discount_row_fields(
                        coupon=coupon, promotion_code=None, at=_utc(coupon_redeemed_at or start, "coupon_redeemed_at")
                    ),
                    "periods_applied": discount_periods_applied,
                },
            )
        mrr = mrr_of(subscription=subscription, items=validated.recurring)
        change_record(
            subscription=subscription,
            kind=SubscriptionChange.Kind.CREATE,
            at=start,
            items_before=(),
            items_after=validated.recurring,
            mrr_before=0,
            mrr_after=mrr,
            acting_user=acting_user,
        )
        subscription_event(
            type="customer.subscription.created",
            subscription=subscription,
            at=start,
            acting_user=acting_user,
            items=[snapshot.as_json() for snapshot in validated.recurring],
            current_period_start=start,
            current_period_end=end,
            trial_end=subscription.trial_end,
            adopted=True,
        )
    return subscription
