"""Coupons, promotion codes and which billed periods a subscription's discount covers.

How long a discount lasts is counted in billed periods with
`Subscription.discount_periods_applied`:

* The period about to be billed is discounted when the coupon is `forever`, or while
  the counter is below its length (1 for `once`, N for `repeating`).
* Every billed period (first invoice, renewal, new period after a cycle change or a
  resume) moves the counter on by one, up to length + 1 and no further. So a
  counter between 1 and the length means "the current period was billed with the
  discount", and length + 1 means "the discount has run out" -- proration needs to
  know the first, to credit unused time at the price actually paid.
* A trial's zero invoice does not count: the discount starts with the first paid period.

Coupons limited to products discount only lines of those products (DiscountInput
products are keys "product:<id>"). An amount-off coupon must be in the subscription's
currency.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils.translation import gettext as _

from billing.events import event_record
from billing.locks import coupon_qs_for_update, promotion_code_qs_for_update
from billing.models import Coupon, PromotionCode, Subscription
from billing.money import Money
from billing.selectors import product_key
from config.errors import DomainError
from invoices.calculations import DiscountInput
from invoices.types import DraftDiscount


class CouponError(DomainError, ValidationError):
    """A coupon or promotion code that cannot be redeemed; `code` says why.

    Codes: unknown, inactive, expired, max_redemptions, customer, first_time,
    currency, products.
    """


# -- how long a discount runs --------------------------------------------------


def _length(coupon: Coupon) -> int | None:
    """Number of discounted periods, None for forever."""
    if coupon.duration == Coupon.Duration.FOREVER:
        return None
    if coupon.duration == Coupon.Duration.ONCE:
        return 1
    return int(coupon.duration_in_periods or 0)


def discount_applies_to_next_period(*, coupon: Coupon | None, periods_applied: int) -> bool:
    if coupon is None:
        return False
    length = _length(coupon)
    return length is None or periods_applied < length


def discount_applied_to_current_period(*, coupon: Coupon | None, periods_applied: int) -> bool:
    if coupon is None:
        return False
    length = _length(coupon)
    return length is None or 1 <= periods_applied <= length


def discount_counter_after_billing(*, coupon: Coupon | None, periods_applied: int) -> int:
    if coupon is None:
        return periods_applied
    length = _length(coupon)
    if length is None or periods_applied > length:
        return periods_applied
    return periods_applied + 1


def discount_periods_advance_bulk(*, subscription_ids: Iterable[int]) -> int:
    """Count one billed period for each subscription (billing run, after its renewal invoices)."""
    return (
        Subscription.objects.filter(pk__in=list(subscription_ids), coupon__isnull=False)
        .filter(
            Q(coupon__duration=Coupon.Duration.ONCE, discount_periods_applied__lte=1)
            | Q(
                coupon__duration=Coupon.Duration.REPEATING,
                discount_periods_applied__lte=F("coupon__duration_in_periods"),
            )
        )
        .update(discount_periods_applied=F("discount_periods_applied") + 1)
    )


# -- discounts as invoice inputs -----------------------------------------------


def coupon_product_ids(coupon: Coupon) -> frozenset[int]:
    """Products the coupon is limited to (empty = all), from the prefetch cache when present."""
    cached = getattr(coupon, "_tarif_product_ids", None)
    if cached is None:
        prefetched = getattr(coupon, "_prefetched_objects_cache", {}).get("applies_to")
        if prefetched is not None:
            cached = frozenset(product.pk for product in prefetched)
        else:
            cached = frozenset(coupon.applies_to.values_list("pk", flat=True))
        coupon._tarif_product_ids = cached  # type: ignore[attr-defined]
    return cached


def coupon_label(coupon: Coupon) -> str:
    if coupon.percent_off is not None:
        percent = f"{coupon.percent_off.normalize():f}"
        return _("%(name)s (%(percent)s %% off)") % {"name": coupon.name, "percent": percent}
    return _("%(name)s (%(amount)s off)") % {"name": coupon.name, "amount": Money(coupon.amount_off, coupon.currency)}


def coupon_draft_discount(coupon: Coupon) -> DraftDiscount:
    product_ids = coupon_product_ids(coupon)
    return DraftDiscount(
        discount=DiscountInput(
            percent_off=coupon.percent_off,
            amount_off=coupon.amount_off,
            currency=(coupon.currency or None) if coupon.amount_off is not None else None,
            products=frozenset(product_key(pk) for pk in product_ids) if product_ids else None,
        ),
        label=coupon_label(coupon),
        coupon_id=coupon.pk,
    )


def _coupon_of(subscription: Subscription) -> Coupon | None:
    return subscription.coupon if subscription.coupon_id is not None else None


def discounts_for_period(*, subscription: Subscription) -> tuple[DraftDiscount, ...]:
    """Discounts of the next period the subscription bills (renewal, first invoice).

    Reads `subscription.coupon` and its products: select_related("coupon") and
    prefetch_related("coupon__applies_to") make this query-free for many subscriptions.
    """
    coupon = _coupon_of(subscription)
    if not discount_applies_to_next_period(coupon=coupon, periods_applied=subscription.discount_periods_applied):
        return ()
    return (coupon_draft_discount(coupon),)


def current_period_discounts(*, subscription: Subscription) -> tuple[DraftDiscount, ...]:
    """Discounts the current period was billed with (proration credits what was paid)."""
    coupon = _coupon_of(subscription)
    if not discount_applied_to_current_period(coupon=coupon, periods_applied=subscription.discount_periods_applied):
        return ()
    return (coupon_draft_discount(coupon),)


def recurring_discounts(*, subscription: Subscription) -> tuple[DraftDiscount, ...]:
    """Discounts that count in MRR: forever ones, and repeating ones still running."""
    coupon = _coupon_of(subscription)
    if coupon is None or coupon.duration == Coupon.Duration.ONCE:
        return ()
    length = _length(coupon)
    if length is not None and subscription.discount_periods_applied > length:
        return ()
    return (coupon_draft_discount(coupon),)


# -- redemption ------------------------------------------------------------------


def _refuse(message: str, code: str) -> CouponError:
    return CouponError(message, code=code)


def coupon_validate(
    *,
    coupon: Coupon,
    at: datetime,
    currency: str | None = None,
    product_ids: Iterable[int] | None = None,
) -> None:
    """Raise CouponError when `coupon` cannot be redeemed at `at` (for these currency and products)."""
    if not coupon.active:
        raise _refuse(_("The coupon “%(name)s” is no longer active.") % {"name": coupon.name}, "inactive")
    if coupon.redeem_by is not None and at >= coupon.redeem_by:
        raise _refuse(_("The coupon “%(name)s” has expired.") % {"name": coupon.name}, "expired")
    if coupon.max_redemptions is not None and coupon.times_redeemed >= coupon.max_redemptions:
        raise _refuse(
            _("The coupon “%(name)s” has been redeemed the maximum number of times.") % {"name": coupon.name},
            "max_redemptions",
        )
    if currency is not None and coupon.amount_off is not None and coupon.currency != currency:
        raise _refuse(
            _("The coupon “%(name)s” is in %(coupon)s; this subscription is in %(currency)s.")
            % {"name": coupon.name, "coupon": coupon.currency, "currency": currency},
            "currency",
        )
    if product_ids is not None:
        limited_to = coupon_product_ids(coupon)
        if limited_to and not limited_to.intersection(product_ids):
            raise _refuse(
                _("The coupon “%(name)s” does not apply to any product of this subscription.") % {"name": coupon.name},
                "products",
            )


def _is_first_time_customer(customer: Any) -> bool:
    from invoices.models import Invoice

    return not (
        Invoice.objects.filter(customer_id=customer.pk, total__gt=0)
        .exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID])
        .exists()
    )


def _promotion_code_validate(*, promotion_code: PromotionCode, customer: Any, at: datetime) -> None:
    code = promotion_code.code
    if not promotion_code.active:
        raise _refuse(_("The code %(code)s is no longer active.") % {"code": code}, "inactive")
    if promotion_code.expires_at is not None and at >= promotion_code.expires_at:
        raise _refuse(_("The code %(code)s has expired.") % {"code": code}, "expired")
    if promotion_code.max_redemptions is not None and promotion_code.times_redeemed >= promotion_code.max_redemptions:
        raise _refuse(
            _("The code %(code)s has been used the maximum number of times.") % {"code": code}, "max_redemptions"
        )
    if promotion_code.customer_id is not None and promotion_code.customer_id != customer.pk:
        raise _refuse(_("The code %(code)s is reserved for another customer.") % {"code": code}, "customer")
    if promotion_code.first_time_only and not _is_first_time_customer(customer):
        raise _refuse(_("The code %(code)s is for first-time customers only.") % {"code": code}, "first_time")


def promotion_code_resolve(*, code: str, customer: Any, at: datetime) -> PromotionCode:
    """The promotion code a customer typed, if it can be redeemed now (codes are case-insensitive)."""
    promotion_code = PromotionCode.objects.select_related("coupon").filter(code__iexact=code.strip()).first()
    if promotion_code is None:
        raise _refuse(_("The code %(code)s does not exist.") % {"code": code.strip()}, "unknown")
    _promotion_code_validate(promotion_code=promotion_code, customer=customer, at=at)
    coupon_validate(coupon=promotion_code.coupon, at=at)
    return promotion_code


@transaction.atomic(savepoint=False)
def coupon_redeem(
    *,
    coupon: Coupon,
    customer: Any,
    at: datetime,
    currency: str | None = None,
    product_ids: Iterable[int] | None = None,
    promotion_code: PromotionCode | None = None,
    subscription_id: int | None = None,
    acting_user: Any = None,
) -> Coupon:
    """Check and count one redemption of `coupon` (through `promotion_code` if given).

    The counters move with F() under the rows' locks, so two redemptions of the last
    available use cannot both succeed.
    """
    if promotion_code is not None:
        if promotion_code.coupon_id != coupon.pk:
            raise ValueError("the promotion code belongs to another coupon")
        locked_code = promotion_code_qs_for_update().get(pk=promotion_code.pk)
        _promotion_code_validate(promotion_code=locked_code, customer=customer, at=at)
    locked = coupon_qs_for_update().get(pk=coupon.pk)
    coupon_validate(
        coupon=locked, at=at, currency=currency, product_ids=list(product_ids) if product_ids is not None else None
    )
    Coupon.objects.filter(pk=locked.pk).update(times_redeemed=F("times_redeemed") + 1)
    if promotion_code is not None:
        PromotionCode.objects.filter(pk=promotion_code.pk).update(times_redeemed=F("times_redeemed") + 1)
    event_record(
        type="customer.discount.created",
        object_type="coupon",
        object_id=locked.pk,
        customer_id=customer.pk,
        occurred_at=at,
        data={
            "coupon": locked.pk,
            "promotion_code": promotion_code.pk if promotion_code is not None else None,
            "subscription": subscription_id,
        },
        acting_user=acting_user,
    )
    locked.times_redeemed += 1
    return locked


def coupon_create(*, data: dict, applies_to: Iterable[Any] = ()) -> Coupon:
    """A new coupon; `clean()` checks percent or amount (with its currency) and the duration.

    Validation runs before the transaction opens, so a refusal leaves the caller's transaction usable.
    """
    coupon = Coupon(**data)
    coupon.full_clean()
    with transaction.atomic(savepoint=False):
        coupon.save()
        if applies_to:
            coupon.applies_to.set(applies_to)
    return coupon


def promotion_code_create(*, data: dict) -> PromotionCode:
    code = PromotionCode(**data)
    code.full_clean()
    with transaction.atomic(savepoint=False):
        code.save()
    return code
