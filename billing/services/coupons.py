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

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Field, Prefetch, Q, Value
from django.db.models.functions import Greatest
from django.utils.translation import gettext as _

from billing.discount_models import DiscountBase
from billing.locks import coupon_qs_for_update, promotion_code_qs_for_update
from billing.models import Coupon, CustomerDiscount, Product, PromotionCode, Subscription, SubscriptionDiscount
from billing.selectors import product_key
from billing.services.modes import modes_check
from config.errors import DomainError
from config.events.log import event_record
from config.modes import default_livemode
from config.money import Money
from config.types import ActingUser
from customers.locks import customer_qs_for_update
from customers.models import Customer
from invoices.calculations import DiscountInput
from invoices.models import Invoice
from invoices.services.finalize import invoices_finalized
from invoices.services.lifecycle import invoice_voided
from invoices.types import DraftDiscount


class CouponError(DomainError, ValidationError):
    """A coupon or promotion code that cannot be redeemed; `code` says why.

    Codes: unknown, inactive, expired, max_redemptions, customer, first_time,
    currency, products.
    """

    code = DomainError.code  # both bases declare `code`; DomainError's comes first (stated for mypy)


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
    """Count one billed period for each subscription's running discounts, up to length + 1
    (an issued invoice does this itself through `discounts_invoices_finalized`)."""
    ids = list(subscription_ids)
    SubscriptionDiscount.objects.filter(subscription_id__in=ids, end__isnull=True).filter(
        Q(coupon__duration=Coupon.Duration.ONCE, periods_applied__lte=1)
        | Q(coupon__duration=Coupon.Duration.REPEATING, periods_applied__lte=F("coupon__duration_in_periods"))
    ).update(periods_applied=F("periods_applied") + 1)
    return (
        Subscription.objects.filter(pk__in=ids, coupon__isnull=False)
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
    assert coupon.amount_off is not None, "Coupon.clean(): a percent or an amount off"
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


# A subscription holds at most this many discounts (Stripe's limit).
MAX_DISCOUNTS = 20


@dataclass(frozen=True, slots=True)
class DiscountSpec:
    """One discount asked for: a coupon, or a promotion code's text (not both)."""

    coupon: Coupon | None = None
    promotion_code: str | None = None


def discount_specs_resolve(
    *, specs: Sequence[DiscountSpec], customer: Customer, at: datetime, held: Sequence[Coupon] = ()
) -> list[tuple[Coupon, PromotionCode | None]]:
    """Each spec as (coupon, promotion code), checked: exactly one of the two per spec, codes
    redeemable by `customer` now, no coupon twice (with the `held` ones), at most MAX_DISCOUNTS."""
    resolved: list[tuple[Coupon, PromotionCode | None]] = []
    seen = {coupon.pk for coupon in held}
    for spec in specs:
        if (spec.coupon is None) == (not spec.promotion_code):
            raise CouponError(_("Give each discount a coupon or a promotion code, not both."), code="coupon_and_code")
        promotion = None
        coupon = spec.coupon
        if spec.promotion_code:
            promotion = promotion_code_resolve(code=spec.promotion_code, customer=customer, at=at)
            coupon = promotion.coupon
        assert coupon is not None
        if coupon.pk in seen:
            raise CouponError(
                _("The coupon “%(name)s” is already among the discounts.") % {"name": coupon.name},
                code="duplicate_discount",
            )
        seen.add(coupon.pk)
        resolved.append((coupon, promotion))
    if len(seen) > MAX_DISCOUNTS:
        raise CouponError(
            _("A subscription holds at most %(max)s discounts.") % {"max": MAX_DISCOUNTS}, code="too_many_discounts"
        )
    return resolved


def discount_row_fields(*, coupon: Coupon, promotion_code: PromotionCode | None, at: datetime) -> dict:
    """The columns a new discount row starts with (a carry-over coupon's whole amount is left)."""
    return {
        "coupon": coupon,
        "promotion_code": promotion_code,
        "start": at,
        "periods_applied": 0,
        "carry_over_remaining": coupon.amount_off if coupon.carry_over else None,
    }


# -- the discounts in force ------------------------------------------------------------


def subscription_discounts_prefetch() -> Prefetch:
    """prefetch_related() argument: a subscription's running discounts, in order, as `active_discounts`."""
    return Prefetch(
        "discounts",
        queryset=SubscriptionDiscount.objects.filter(end__isnull=True)
        .select_related("coupon", "promotion_code")
        .prefetch_related("coupon__applies_to")
        .order_by("position", "pk"),
        to_attr="active_discounts",
    )


def customer_discounts_prefetch(prefix: str = "customer__") -> Prefetch:
    """prefetch_related() argument: a customer's running discount, as `active_discounts` (a list)."""
    return Prefetch(
        f"{prefix}discounts",
        queryset=CustomerDiscount.objects.filter(end__isnull=True)
        .select_related("coupon", "promotion_code")
        .prefetch_related("coupon__applies_to"),
        to_attr="active_discounts",
    )


def subscription_discounts_active(*, subscription: Subscription) -> list[SubscriptionDiscount]:
    """The subscription's running discounts in order: prefetched, staged on an unsaved
    subscription (`_tarif_staged_discounts`, creation and its preview), else read."""
    cached = getattr(subscription, "active_discounts", None)
    if cached is not None:
        return list(cached)
    staged = getattr(subscription, "_tarif_staged_discounts", None)
    if staged is not None:
        return list(staged)
    if subscription.pk is None:
        return []
    return list(
        SubscriptionDiscount.objects.filter(subscription_id=subscription.pk, end__isnull=True)
        .select_related("coupon", "promotion_code")
        .prefetch_related("coupon__applies_to")
        .order_by("position", "pk")
    )


def customer_discount_active(*, customer: Customer) -> CustomerDiscount | None:
    cached = getattr(customer, "active_discounts", None)
    if cached is None:
        if customer.pk is None:
            return None
        cached = list(
            CustomerDiscount.objects.filter(customer_id=customer.pk, end__isnull=True)
            .select_related("coupon", "promotion_code")
            .prefetch_related("coupon__applies_to")
        )
    return cached[0] if cached else None


def _usable(discount: DiscountBase, currency: str) -> bool:
    coupon = discount.coupon
    return coupon.amount_off is None or coupon.currency == currency


def _applies_next(discount: DiscountBase) -> bool:
    if discount.carry_over_remaining is not None:  # carry-over: until used up
        return discount.carry_over_remaining > 0
    return discount_applies_to_next_period(coupon=discount.coupon, periods_applied=discount.periods_applied)


def _applied_current(discount: DiscountBase) -> bool:
    if discount.carry_over_remaining is not None:
        # What is left now: a credit at the current price net of it never exceeds what the
        # period was billed, and the credit is capped at that anyway (billing/services/credits.py).
        return discount.periods_applied >= 1 and discount.carry_over_remaining > 0
    return discount_applied_to_current_period(coupon=discount.coupon, periods_applied=discount.periods_applied)


def _recurring(discount: DiscountBase) -> bool:
    coupon = discount.coupon
    if coupon.duration == Coupon.Duration.ONCE:
        return False
    length = _length(coupon)
    return length is None or discount.periods_applied <= length


def discount_draft(discount: DiscountBase) -> DraftDiscount:
    """A discount row as an invoice input (a carry-over coupon gives what is left of it)."""
    draft = coupon_draft_discount(discount.coupon)
    if discount.carry_over_remaining is not None:
        draft = replace(draft, discount=replace(draft.discount, amount_off=discount.carry_over_remaining))
    if isinstance(discount, SubscriptionDiscount):
        return replace(draft, subscription_discount_id=discount.pk)
    return replace(draft, customer_discount_id=discount.pk)


def _in_force(subscription: Subscription, wanted: Callable[[DiscountBase], bool]) -> tuple[DraftDiscount, ...]:
    """The subscription's own discounts that `wanted` keeps, in order; when none is kept, the
    customer's discount if `wanted` keeps it (Stripe: a subscription's discounts win over the customer's)."""
    currency = subscription.currency
    own = [d for d in subscription_discounts_active(subscription=subscription) if wanted(d) and _usable(d, currency)]
    if own:
        return tuple(discount_draft(discount) for discount in own)
    customer_discount = customer_discount_active(customer=subscription.customer)
    if customer_discount is not None and wanted(customer_discount) and _usable(customer_discount, currency):
        return (discount_draft(customer_discount),)
    return ()


def discounts_for_period(*, subscription: Subscription) -> tuple[DraftDiscount, ...]:
    """Discounts of the next period the subscription bills (renewal, first invoice), in order.

    Prefetch `subscription_discounts_prefetch()` and `customer_discounts_prefetch()` (with the
    customer selected) to make this query-free for many subscriptions.
    """
    return _in_force(subscription, _applies_next)


def current_period_discounts(*, subscription: Subscription) -> tuple[DraftDiscount, ...]:
    """Discounts the current period was billed with (proration credits what was paid), in order."""
    return _in_force(subscription, _applied_current)


def recurring_discounts(*, subscription: Subscription) -> tuple[DraftDiscount, ...]:
    """Discounts that count in MRR: forever ones, and repeating ones still running."""
    return _in_force(subscription, _recurring)


def discounts_after_billing(*, subscription: Subscription) -> list[SubscriptionDiscount]:
    """Unsaved copies of the running discounts as billing the next period leaves them (previews)."""
    advanced = []
    for discount in subscription_discounts_active(subscription=subscription):
        copied = copy.copy(discount)
        if _applies_next(discount):
            copied.periods_applied = discount.periods_applied + 1
        advanced.append(copied)
    return advanced


# -- what an issued invoice does to its discounts -----------------------------------------


def _discount_entries(invoice: Invoice) -> list[tuple[type[DiscountBase], int, int]]:
    entries: list[tuple[type[DiscountBase], int, int]] = []
    for entry in (invoice.custom_fields or {}).get("discount_sources") or ():
        models: tuple[tuple[str, type[DiscountBase]], ...] = (
            ("subscription_discount", SubscriptionDiscount),
            ("customer_discount", CustomerDiscount),
        )
        for key, model in models:
            if entry.get(key) is not None:
                entries.append((model, int(entry[key]), int(entry.get("amount") or 0)))
    return entries


def discounts_invoices_finalized(*, invoices: Sequence[Invoice]) -> None:
    """Hook receiver (invoices.invoices_finalized): each issued invoice counts one period for
    the discounts it carried and uses up what they took of a carry-over amount.

    Runs in the issuing transaction and an invoice is issued once (draft -> open, under its
    lock), so a billing-run retry or re-run never counts twice. Counters move with F().
    """
    counts: dict[tuple[type[DiscountBase], int], int] = defaultdict(int)
    used: list[tuple[type[DiscountBase], int, int]] = []
    for invoice in invoices:
        for model, pk, amount in _discount_entries(invoice):
            counts[(model, pk)] += 1
            if amount:
                used.append((model, pk, amount))
    by_count: dict[tuple[type[DiscountBase], int], list[int]] = defaultdict(list)
    for (model, pk), count in counts.items():
        by_count[(model, count)].append(pk)
    for (model, count), pks in by_count.items():
        model._default_manager.filter(pk__in=pks).update(periods_applied=F("periods_applied") + count)
    for model, pk, amount in used:
        model._default_manager.filter(pk=pk, carry_over_remaining__isnull=False).update(
            carry_over_remaining=Greatest(F("carry_over_remaining") - amount, Value(0))
        )


def discounts_invoice_voided(*, invoice: Invoice) -> None:
    """Hook receiver (invoices.invoice_voided): a voided invoice gives back the carry-over it
    used (the customer never paid for it); the period stays counted, as Stripe keeps a used
    `once` coupon used."""
    for model, pk, amount in _discount_entries(invoice):
        if amount:
            model._default_manager.filter(pk=pk, carry_over_remaining__isnull=False).update(
                carry_over_remaining=F("carry_over_remaining") + amount
            )


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


def _is_first_time_customer(customer: Customer) -> bool:
    return not (
        Invoice.objects.filter(customer_id=customer.pk, total__gt=0)
        .exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID])
        .exists()
    )


def _promotion_code_validate(*, promotion_code: PromotionCode, customer: Customer, at: datetime) -> None:
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


def promotion_code_resolve(*, code: str, customer: Customer, at: datetime) -> PromotionCode:
    """The promotion code a customer typed, if it can be redeemed now (codes are case-insensitive)."""
    # A code of the other mode does not exist for this customer (live and test never mix).
    promotion_code = (
        PromotionCode.objects.select_related("coupon")
        .filter(code__iexact=code.strip(), livemode=customer.livemode)
        .first()
    )
    if promotion_code is None:
        raise _refuse(_("The code %(code)s does not exist.") % {"code": code.strip()}, "unknown")
    _promotion_code_validate(promotion_code=promotion_code, customer=customer, at=at)
    coupon_validate(coupon=promotion_code.coupon, at=at)
    return promotion_code


@transaction.atomic(savepoint=False)
def coupon_redeem(
    *,
    coupon: Coupon,
    customer: Customer,
    at: datetime,
    currency: str | None = None,
    product_ids: Iterable[int] | None = None,
    promotion_code: PromotionCode | None = None,
    subscription_id: int | None = None,
    acting_user: ActingUser = None,
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


# -- changing a coupon ------------------------------------------------------------

# What a coupon gives; frozen once redeemed, because subscribers' future invoices read
# it. The console, imports and the API all change coupons through coupon_update, and on
# PostgreSQL billing/migrations/0012 refuses the same changes.
# `carry_over` is not a frozen term: a redemption copies it into its discount row
# (`carry_over_remaining` set or null), so changing it later only affects new redemptions.
COUPON_TERMS = ("percent_off", "amount_off", "currency", "duration", "duration_in_periods", "applies_to")
COUPON_EDITABLE_FIELDS = (*COUPON_TERMS, "name", "max_redemptions", "redeem_by", "active")


class CouponInUse(CouponError):
    """The change would alter the terms of a coupon customers already hold."""


def coupon_is_redeemed(*, coupon: Coupon) -> bool:
    return (
        coupon.times_redeemed > 0
        or coupon.subscriptions.exists()
        or SubscriptionDiscount.objects.filter(coupon_id=coupon.pk).exists()
        or CustomerDiscount.objects.filter(coupon_id=coupon.pk).exists()
    )


def coupon_frozen_fields(*, coupon: Coupon) -> tuple[str, ...]:
    """The fields no write may change now (empty while nobody redeemed the coupon)."""
    return COUPON_TERMS if coupon_is_redeemed(coupon=coupon) else ()


def coupon_terms_changed(*, coupon: Coupon, changes: dict) -> list[str]:
    """The terms that `changes` would really change on the stored `coupon`."""
    changed = []
    for name, value in changes.items():
        if name not in COUPON_TERMS:
            continue
        if name == "applies_to":
            same = set(coupon.applies_to.values_list("pk", flat=True)) == {product.pk for product in value or ()}
        elif name == "currency":
            same = (coupon.currency or "") == (value or "")
        else:
            same = getattr(coupon, name) == value
        if not same:
            changed.append(name)
    return changed


def coupon_update_validate(*, coupon: Coupon, changes: dict) -> None:
    """Raise the error coupon_update would raise for `changes` (`coupon` as stored)."""
    unknown = set(changes) - set(COUPON_EDITABLE_FIELDS)
    if unknown:
        raise CouponError(_("Unknown coupon fields: %(f)s.") % {"f": ", ".join(sorted(unknown))}, code="fields")
    touched = coupon_terms_changed(coupon=coupon, changes=changes)
    if touched and coupon_is_redeemed(coupon=coupon):
        raise CouponInUse(
            _(
                "The coupon “%(name)s” has been redeemed: its terms stay as sold. Create a new coupon "
                "instead of changing %(fields)s."
            )
            % {"name": coupon.name, "fields": ", ".join(touched)},
            code="redeemed",
        )


def coupon_update(*, coupon: Coupon, changes: dict, acting_user: ActingUser = None) -> Coupon:
    """Change a coupon: its name, limits and active flag always; its terms until it is redeemed.

    Checked before the transaction opens (a refusal leaves the caller's transaction usable),
    then again under the coupon's lock, which coupon_redeem takes too: a redemption
    cannot slip in between the check and the write.
    """
    coupon_update_validate(coupon=coupon, changes=changes)
    with transaction.atomic(savepoint=False):
        locked = coupon_qs_for_update().get(pk=coupon.pk)
        coupon_update_validate(coupon=locked, changes=changes)
        for name, value in changes.items():
            if name != "applies_to":
                setattr(locked, name, value)
        locked.full_clean()
        locked.save()
        if "applies_to" in changes and "applies_to" in coupon_terms_changed(coupon=locked, changes=changes):
            locked.applies_to.set(changes["applies_to"])
    return locked


def coupon_delete(*, coupon: Coupon) -> None:
    """Delete a coupon nobody redeemed; a redeemed one is archived instead (active = False)."""
    with transaction.atomic(savepoint=False):
        locked = coupon_qs_for_update().get(pk=coupon.pk)
        if coupon_is_redeemed(coupon=locked):
            raise CouponInUse(
                _("The coupon “%(name)s” has been redeemed: deactivate it instead of deleting it.")
                % {"name": coupon.name},
                code="redeemed",
            )
        locked.delete()


def coupon_create(*, data: dict, applies_to: Iterable[Product] = (), livemode: bool | None = None) -> Coupon:
    """A new coupon, in `livemode` (default: the running request's, else live); `clean()` checks
    percent or amount (with its currency) and the duration. Its products are of its mode.

    Validation runs before the transaction opens, so a refusal leaves the caller's transaction usable.
    """
    coupon = Coupon(**data)
    coupon.livemode = default_livemode() if livemode is None else livemode
    applies_to = list(applies_to)
    modes_check(livemode=coupon.livemode, objects=applies_to)
    coupon.full_clean()
    with transaction.atomic(savepoint=False):
        coupon.save()
        if applies_to:
            coupon.applies_to.set(applies_to)
    return coupon


def promotion_code_create(*, data: dict) -> PromotionCode:
    """A new code for a coupon, in the coupon's mode (and its customer's, when it has one)."""
    code = PromotionCode(**data)
    if code.coupon_id is not None:
        code.livemode = code.coupon.livemode
        modes_check(livemode=code.livemode, objects=[code.customer])
    code.full_clean()
    with transaction.atomic(savepoint=False):
        code.save()
    return code


def promotion_code_frozen_fields(*, promotion_code: PromotionCode) -> tuple[str, ...]:
    """A code customers already typed keeps its coupon and its text (their discount points at it)."""
    return ("coupon", "code") if promotion_code.times_redeemed else ()


def promotion_code_update_validate(*, promotion_code: PromotionCode, changes: dict) -> None:
    frozen = promotion_code_frozen_fields(promotion_code=promotion_code)
    touched = []
    for name in frozen:
        if name not in changes:
            continue
        # The frozen names are concrete fields; get_field() is typed to return relations too.
        stored = getattr(promotion_code, cast(Field, PromotionCode._meta.get_field(name)).attname)
        if stored != getattr(changes[name], "pk", changes[name]):
            touched.append(name)
    if touched:
        raise CouponInUse(
            _("The code %(code)s has been used: create a new code instead of changing %(fields)s.")
            % {"code": promotion_code.code, "fields": ", ".join(touched)},
            code="redeemed",
        )


def promotion_code_update(*, promotion_code: PromotionCode, changes: dict) -> PromotionCode:
    """Change a promotion code (limits, expiry, active flag; its coupon and text until first used)."""
    promotion_code_update_validate(promotion_code=promotion_code, changes=changes)
    for name, value in changes.items():
        setattr(promotion_code, name, value)
    promotion_code.full_clean()
    with transaction.atomic(savepoint=False):
        promotion_code.save()
    return promotion_code


def discounts_register() -> None:
    """Connect the receivers above to the invoices' hooks (BillingConfig.ready)."""
    invoices_finalized.connect(discounts_invoices_finalized)
    invoice_voided.connect(discounts_invoice_voided)


# -- a customer's discount (Stripe's customer.discount) ------------------------------


@transaction.atomic(savepoint=False)
def customer_discount_apply(
    *,
    customer: Customer,
    coupon: Coupon | None = None,
    promotion_code: str | None = None,
    at: datetime,
    acting_user: ActingUser = None,
) -> CustomerDiscount:
    """Give `customer` a discount for the invoices of its subscriptions that hold none of their
    own; it replaces the customer's running discount (one at a time, as Stripe's)."""
    # Lock order (docs/billing.md): the promotion code and the coupon (coupon_redeem), then the customer.
    [(found, promotion)] = discount_specs_resolve(
        specs=[DiscountSpec(coupon=coupon, promotion_code=promotion_code or None)], customer=customer, at=at
    )
    modes_check(livemode=customer.livemode, objects=[found])
    redeemed = coupon_redeem(
        coupon=found,
        customer=customer,
        at=at,
        currency=customer.currency,
        promotion_code=promotion,
        acting_user=acting_user,
    )
    locked = customer_qs_for_update().get(pk=customer.pk)
    previous = list(
        CustomerDiscount.objects.filter(customer_id=locked.pk, end__isnull=True).values_list("pk", flat=True)
    )
    CustomerDiscount.objects.filter(pk__in=previous).update(end=at)
    discount = CustomerDiscount.objects.create(
        customer=locked, **discount_row_fields(coupon=redeemed, promotion_code=promotion, at=at)
    )
    if previous:  # the first one is announced by coupon_redeem's customer.discount.created
        event_record(
            type="customer.discount.updated",
            object_type="customer",
            object_id=locked.pk,
            customer_id=locked.pk,
            occurred_at=at,
            data={"discount": discount.pk, "coupon": redeemed.pk, "previous_discounts": previous},
            acting_user=acting_user,
        )
    return discount


@transaction.atomic(savepoint=False)
def customer_discount_remove(*, customer: Customer, at: datetime, acting_user: ActingUser = None) -> None:
    """End the customer's running discount from its next invoice on."""
    locked = customer_qs_for_update().get(pk=customer.pk)
    running = list(
        CustomerDiscount.objects.filter(customer_id=locked.pk, end__isnull=True).values_list("pk", "coupon_id")
    )
    if not running:
        raise CouponError(_("This customer has no discount."), code="no_discount")
    CustomerDiscount.objects.filter(pk__in=[pk for pk, _coupon in running]).update(end=at)
    for pk, coupon_id in running:
        event_record(
            type="customer.discount.deleted",
            object_type="customer",
            object_id=locked.pk,
            customer_id=locked.pk,
            occurred_at=at,
            data={"discount": pk, "coupon": coupon_id},
            acting_user=acting_user,
        )
