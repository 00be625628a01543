"""Adjustments that neither change items nor status: extend a trial, add or remove a coupon.

* Extending a trial moves its end later; the current period is the trial itself, so it
  ends then too, and a billing-cycle anchor that sat on the old trial end follows it (the
  first paid period starts when the trial ends, as at creation). Nothing is invoiced.
* A coupon added to a running subscription applies from its next invoice (the current
  period is already billed): the redemption is counted and checked as at creation
  (active, limits, currency, products, mode), and joins the end of its discounts (or
  replaces them with `replace_all`). Removing a discount (or all) stops it from the next
  invoice. Neither prorates the current period.
  Both record a history row (MRR before and after) so the MRR movements see them.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils.translation import gettext as _

from billing.models import Coupon, Subscription, SubscriptionChange, SubscriptionDiscount
from billing.selectors import subscription_items_snapshot
from billing.services.coupons import (
    DiscountSpec,
    coupon_redeem,
    discount_row_fields,
    discount_specs_resolve,
    promotion_code_resolve,
)
from billing.services.modes import modes_check
from billing.services.subscriptions.common import (
    MAX_TRIAL_DAYS,
    Status,
    SubscriptionError,
    change_record,
    changeable_check,
    instant,
    mrr_of,
    subscription_event,
    subscription_lock,
)
from config.types import ActingUser


@transaction.atomic(savepoint=False)
def subscription_extend_trial(
    *, subscription: Subscription, trial_end: datetime, at: datetime | None = None, acting_user: ActingUser = None
) -> Subscription:
    """Move a running trial's end to `trial_end` (later than today's end, within the longest trial)."""
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    if trial_end.utcoffset() is None:
        raise ValueError("trial_end must be timezone-aware")
    trial_end = instant(at=trial_end, customer=locked.customer)
    if locked.status != Status.TRIALING or locked.trial_end is None:
        raise SubscriptionError(_("This subscription is not in a trial."), code="not_trialing")
    if trial_end <= locked.trial_end or trial_end <= at:
        raise SubscriptionError(
            _("The new trial end must come after the current one (%(end)s).") % {"end": locked.trial_end.isoformat()},
            code="trial_end_not_later",
        )
    started = locked.trial_start or locked.current_period_start
    if (trial_end - started).days > MAX_TRIAL_DAYS:
        raise SubscriptionError(
            _("A trial lasts from 0 to %(max)s days.") % {"max": MAX_TRIAL_DAYS}, code="invalid_trial"
        )
    previous_end = locked.trial_end
    if locked.billing_cycle_anchor == previous_end:
        locked.billing_cycle_anchor = trial_end
    locked.trial_end = trial_end
    locked.current_period_end = trial_end
    locked.save(update_fields=["trial_end", "current_period_end", "billing_cycle_anchor", "updated_at"])
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        trial_end=trial_end,
        previous_trial_end=previous_end,
    )
    return locked


def _record_discount_change(
    *, subscription: Subscription, mrr_before: int, at: datetime, acting_user: ActingUser
) -> None:
    items = subscription_items_snapshot(subscription=subscription)
    change_record(
        subscription=subscription,
        kind=SubscriptionChange.Kind.CHANGE,
        at=at,
        items_before=items,
        items_after=items,
        mrr_before=mrr_before,
        mrr_after=mrr_of(subscription=subscription, items=items),
        acting_user=acting_user,
    )


def _mirror_first_coupon(subscription: Subscription) -> None:
    """`Subscription.coupon` stays readable: the first running discount's coupon (issue 16)."""
    first = subscription.discounts.filter(end__isnull=True).order_by("position", "pk").first()
    subscription.coupon_id = first.coupon_id if first else None
    subscription.promotion_code_id = first.promotion_code_id if first else None
    subscription.discount_periods_applied = first.periods_applied if first else 0
    subscription.save(update_fields=["coupon", "promotion_code", "discount_periods_applied", "updated_at"])


@transaction.atomic(savepoint=False)
def subscription_coupon_apply(
    *,
    subscription: Subscription,
    coupon: Coupon | None = None,
    promotion_code: str | None = None,
    at: datetime | None = None,
    replace_all: bool = False,
    acting_user: ActingUser = None,
) -> Subscription:
    """Add a discount (see `subscription_discount_add`); returns the subscription, as before."""
    discount = subscription_discount_add(
        subscription=subscription,
        coupon=coupon,
        promotion_code=promotion_code,
        at=at,
        replace_all=replace_all,
        acting_user=acting_user,
    )
    return discount.subscription


@transaction.atomic(savepoint=False)
def subscription_discount_add(
    *,
    subscription: Subscription,
    coupon: Coupon | None = None,
    promotion_code: str | None = None,
    at: datetime | None = None,
    replace_all: bool = False,
    acting_user: ActingUser = None,
) -> SubscriptionDiscount:
    """Add `coupon` (or the coupon of `promotion_code`) at the end of the subscription's
    discounts, from its next invoice on. `replace_all`: it becomes the only discount (the
    others end now), as the single-coupon API of old did."""
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    changeable_check(locked)
    if coupon is not None and promotion_code:
        resolved = promotion_code_resolve(code=promotion_code, customer=locked.customer, at=at)
        if coupon.pk != resolved.coupon_id:
            raise SubscriptionError(_("Give a coupon or a promotion code, not both."), code="coupon_and_code")
        coupon = None
    if coupon is None and not promotion_code:
        raise SubscriptionError(_("Choose a coupon or type a promotion code."), code="no_coupon")
    running = list(locked.discounts.filter(end__isnull=True).select_related("coupon").order_by("position", "pk"))
    held = [] if replace_all else [discount.coupon for discount in running]
    [(found, promotion)] = discount_specs_resolve(
        specs=[DiscountSpec(coupon=coupon, promotion_code=promotion_code or None)],
        customer=locked.customer,
        at=at,
        held=held,
    )
    modes_check(livemode=locked.customer.livemode, objects=[found])
    items = subscription_items_snapshot(subscription=locked)
    mrr_before = mrr_of(subscription=locked, items=items)
    redeemed = coupon_redeem(
        coupon=found,
        customer=locked.customer,
        at=at,
        currency=locked.currency,
        product_ids={item.price.product_id for item in items},
        promotion_code=promotion,
        subscription_id=locked.pk,
        acting_user=acting_user,
    )
    if replace_all:
        locked.discounts.filter(end__isnull=True).update(end=at)
    position = max((discount.position for discount in running), default=-1) + 1
    discount = SubscriptionDiscount.objects.create(
        subscription=locked, position=position, **discount_row_fields(coupon=redeemed, promotion_code=promotion, at=at)
    )
    _mirror_first_coupon(locked)
    _record_discount_change(subscription=locked, mrr_before=mrr_before, at=at, acting_user=acting_user)
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        coupon=redeemed.pk,
        discount=discount.pk,
        discounts=[row.coupon_id for row in locked.discounts.filter(end__isnull=True).order_by("position", "pk")],
    )
    return discount


@transaction.atomic(savepoint=False)
def subscription_coupon_remove(
    *,
    subscription: Subscription,
    discount: SubscriptionDiscount | None = None,
    at: datetime | None = None,
    acting_user: ActingUser = None,
) -> Subscription:
    """End one discount of the subscription (`discount`; default: all of them) from its next
    invoice on. The current period keeps what it was billed with (a credit for it still
    returns what was paid: billing/services/credits.py)."""
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    running = locked.discounts.filter(end__isnull=True)
    if discount is not None:
        running = running.filter(pk=discount.pk)
    ended = list(running.values_list("pk", "coupon_id"))
    if not ended:
        if discount is not None:
            raise SubscriptionError(_("This discount is not running on this subscription."), code="no_discount")
        raise SubscriptionError(_("This subscription has no coupon."), code="no_coupon")
    if locked.status == Status.CANCELED:
        raise SubscriptionError(_("This subscription has ended."), code="canceled")
    mrr_before = mrr_of(subscription=locked)
    SubscriptionDiscount.objects.filter(pk__in=[pk for pk, _coupon in ended]).update(end=at)
    _mirror_first_coupon(locked)
    _record_discount_change(subscription=locked, mrr_before=mrr_before, at=at, acting_user=acting_user)
    for pk, coupon_id in ended:
        subscription_event(
            type="customer.discount.deleted",
            subscription=locked,
            at=at,
            acting_user=acting_user,
            previous_coupon=coupon_id,
            discount=pk,
        )
    return locked
