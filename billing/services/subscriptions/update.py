"""Stripe's subscription update (`PATCH /api/v1/subscriptions/{id}`) as one service.

`subscription_update` composes the existing services (item change, coupon apply/remove,
trial extension or end, cancel at a date and its undo) in one transaction under the
subscription's lock. Everything the request asks is checked before anything changes, and
any refusal raised later rolls the whole transaction back: an update is applied entirely or
not at all.

Order of application (Stripe's): collection method and metadata, items (with a reset of the
billing-cycle anchor when asked), coupon, trial, cancellation.

* Items follow Stripe's `items: [{id, price, quantity, deleted}]`: an item `id` changes
  (price, quantity) or deletes (`deleted`) that item; an entry without id adds `price`.
  Items not named stay as they are.
* `trial_end` on a trialing subscription moves the trial's end (later or earlier, still in
  the future); `"now"` ends the trial at once (the first paid period starts and is
  invoiced). On an active subscription it **adds a trial**: the current period ends now,
  the unused time is credited per `proration_behavior` (pending credit items, an invoice
  at once, or nothing), and a trial runs from now to `trial_end`, after which the first
  paid period starts.
* `billing_cycle_anchor="now"` restarts the cycle now: unused time credited (unless
  `proration_behavior=none`), the new period invoiced at once.
* `cancel_at` schedules the end at an instant; `cancel_at: null` or
  `cancel_at_period_end: false` undoes a scheduled cancellation (nothing to undo: no-op).
* `metadata` merges: a key set to "" is removed.
* `payment_behavior="pending_if_incomplete"`: an item change whose immediate invoice is not
  paid at once is held as a `PendingUpdate` (billing/services/pending_updates.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

from django.db import transaction
from django.utils.translation import gettext as _

from billing.models import Coupon, InvoiceItem, Price, Subscription, SubscriptionChange, SubscriptionItem
from billing.proration import cancellation_credit
from billing.selectors import item_charges, pending_invoice_items, subscription_items_snapshot
from billing.services.changes import (
    ChangePreview,
    proration_description,
    subscription_change,
    subscription_preview_change,
)
from billing.services.coupons import current_period_discounts
from billing.services.credits import credit_basis_validate
from billing.services.lifecycle_notices import trial_will_end_send
from billing.services.pending_updates import pending_update_create
from billing.services.subscriptions.adjust import (
    subscription_coupon_apply,
    subscription_coupon_remove,
    subscription_extend_trial,
)
from billing.services.subscriptions.common import (
    DEFAULT_DAYS_UNTIL_DUE,
    MAX_TRIAL_DAYS,
    ItemSpec,
    Status,
    SubscriptionConflict,
    SubscriptionError,
    _set_status,
    change_record,
    instant,
    invoice_issue,
    mrr_of,
    subscription_event,
    subscription_lock,
)
from billing.services.subscriptions.lifecycle import (
    subscription_cancel,
    subscription_cancel_at,
    subscription_cancel_undo,
    subscription_end_trial,
)
from billing.services.upcoming import pending_item_line, subscription_load
from config.metadata import MAX_METADATA_KEY_LENGTH, MAX_METADATA_KEYS, MAX_METADATA_VALUE_LENGTH
from config.types import ActingUser, JsonDict
from invoices.types import DraftInvoice

PRORATION_BEHAVIORS: tuple[str, ...] = ("create_prorations", "always_invoice", "none")
PAYMENT_BEHAVIORS: tuple[str, ...] = ("allow_incomplete", "pending_if_incomplete")
# The furthest a cancellation may be scheduled (an absurd date is a typo, not a plan).
MAX_CANCEL_AT_DAYS = 3660


class Keep(Enum):
    """A parameter the update does not mention (None means "clear" where clearing exists)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """One entry of Stripe's `items`: `id` names an existing item, else `price` adds one."""

    id: int | None = None
    price: Price | None = None
    quantity: int | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class SubscriptionUpdate:
    items: tuple[ItemUpdate, ...] = ()
    proration_behavior: str | None = None  # default create_prorations (always_invoice when pending)
    payment_behavior: str = "allow_incomplete"
    coupon: Coupon | None | Keep = KEEP  # None removes the coupon
    promotion_code: str | None = None
    trial_end: datetime | Literal["now"] | Keep = KEEP
    cancel_at: datetime | None | Keep = KEEP  # None undoes a scheduled cancellation
    cancel_at_period_end: bool | Keep = KEEP
    billing_cycle_anchor_now: bool = False
    collection_method: str | Keep = KEEP
    days_until_due: int | None | Keep = KEEP
    metadata: Mapping[str, str] | None = None
    proration_credit_basis: str | Keep = KEEP  # classic, flexible, or "" for the platform default


class UpdateRefused(SubscriptionError):
    """A parameter of an update that cannot be applied as given (HTTP 400)."""

    code = "invalid_update"
    http_status = 400


@dataclass(frozen=True, slots=True)
class _Decided:
    items: tuple[ItemSpec, ...] | None  # the full new list when the items change
    proration: str
    pending: bool


def _refuse(message: str, code: str) -> UpdateRefused:
    return UpdateRefused(message, code=code)


def _new_items(*, subscription: Subscription, updates: Sequence[ItemUpdate]) -> tuple[ItemSpec, ...] | None:
    """The subscription's items after Stripe-style item updates, or None when nothing changes."""
    if not updates:
        return None
    rows = list(SubscriptionItem.objects.filter(subscription_id=subscription.pk).select_related("price__product"))
    by_id = {row.pk: row for row in rows}
    current: dict[int, tuple[Price, int]] = {row.pk: (row.price, row.quantity) for row in rows}
    added: list[tuple[Price, int]] = []
    seen: set[int] = set()
    for update in updates:
        if update.id is None:
            if update.deleted:
                raise _refuse(_("To delete an item, give its id."), "item_id_required")
            if update.price is None:
                raise _refuse(_("A new item needs a price."), "item_price_required")
            added.append((update.price, 1 if update.quantity is None else update.quantity))
            continue
        if update.id not in by_id:
            raise _refuse(_("This subscription has no item %(id)s.") % {"id": update.id}, "item_not_found")
        if update.id in seen:
            raise _refuse(_("The item %(id)s appears twice.") % {"id": update.id}, "duplicate_item")
        seen.add(update.id)
        if update.deleted:
            if update.price is not None or update.quantity is not None:
                raise _refuse(_("A deleted item takes no price or quantity."), "deleted_item_fields")
            del current[update.id]
            continue
        price, quantity = current[update.id]
        current[update.id] = (
            update.price if update.price is not None else price,
            update.quantity if update.quantity is not None else quantity,
        )
    result = tuple(ItemSpec(price=price, quantity=quantity) for price, quantity in (*current.values(), *added))
    before = {(row.price_id, row.quantity) for row in rows}
    after = {(spec.price.pk, spec.quantity) for spec in result}
    if before == after and len(result) == len(rows):
        return None
    return result


def _check_metadata(metadata: Mapping[str, str]) -> None:
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY_LENGTH:
            raise _refuse(
                _("Metadata keys are 1 to %(max)s characters.") % {"max": MAX_METADATA_KEY_LENGTH}, "metadata_key"
            )
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE_LENGTH:
            raise _refuse(
                _("Metadata values are text of at most %(max)s characters.") % {"max": MAX_METADATA_VALUE_LENGTH},
                "metadata_value",
            )


def _merged_metadata(current: JsonDict, changes: Mapping[str, str]) -> JsonDict:
    merged = dict(current)
    for key, value in changes.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_METADATA_KEYS:
        raise _refuse(_("At most %(max)s metadata keys.") % {"max": MAX_METADATA_KEYS}, "metadata_keys")
    return merged


def _validate(*, subscription: Subscription, update: SubscriptionUpdate, at: datetime) -> _Decided:
    """Every check that needs no write, so a refused update changes nothing."""
    if subscription.status == Status.CANCELED:
        raise SubscriptionConflict(_("This subscription has ended."), code="subscription_canceled")
    if update.payment_behavior not in PAYMENT_BEHAVIORS:
        raise _refuse(_("Unknown payment behavior."), "payment_behavior")
    pending = update.payment_behavior == "pending_if_incomplete"
    proration = update.proration_behavior or ("always_invoice" if pending else "create_prorations")
    if proration not in PRORATION_BEHAVIORS:
        raise _refuse(
            _("Unknown proration behavior %(mode)s; use one of %(modes)s.")
            % {"mode": proration, "modes": ", ".join(PRORATION_BEHAVIORS)},
            "proration_mode",
        )
    items = _new_items(subscription=subscription, updates=update.items)
    trialing = subscription.status == Status.TRIALING
    if pending:
        others = (
            update.coupon is not KEEP,
            update.promotion_code is not None,
            update.trial_end is not KEEP,
            update.cancel_at is not KEEP,
            update.cancel_at_period_end is not KEEP,
            update.billing_cycle_anchor_now,
            update.collection_method is not KEEP,
            update.days_until_due is not KEEP,
            update.metadata is not None,
            update.proration_credit_basis is not KEEP,
        )
        if any(others):
            raise _refuse(
                _("A pending update (payment_behavior=pending_if_incomplete) can only change items."),
                "pending_update_parameters",
            )
        if proration != "always_invoice":
            raise _refuse(
                _("A pending update invoices at once: use proration_behavior=always_invoice."),
                "pending_update_proration",
            )
        if items is None:
            raise _refuse(_("A pending update needs an item change."), "pending_update_no_change")
    if items is not None and subscription.pending_updates.filter(status="pending").exists():
        raise SubscriptionConflict(
            _("This subscription has a pending update waiting for payment; its items cannot change until then."),
            code="pending_update_exists",
        )
    if update.billing_cycle_anchor_now:
        if trialing:
            raise _refuse(_("To start billing during a trial, end the trial: trial_end=now."), "anchor_in_trial")
        if subscription.status not in (Status.ACTIVE, Status.PAST_DUE):
            raise SubscriptionConflict(
                _("Only a running subscription can restart its billing cycle."), code="not_changeable"
            )
        if update.trial_end is not KEEP:
            raise _refuse(_("Give billing_cycle_anchor or trial_end, not both."), "parameter_conflict")
    trial_end = update.trial_end
    if trial_end == "now":
        if not trialing:
            raise SubscriptionConflict(_("This subscription is not in a trial."), code="not_trialing")
    elif isinstance(trial_end, datetime):
        if trial_end.utcoffset() is None:
            raise _refuse(_("trial_end must include a time zone."), "trial_end_naive")
        if trial_end <= at:
            raise _refuse(
                _('trial_end must be in the future (after %(now)s), or "now".') % {"now": at.isoformat()},
                "trial_end_past",
            )
        started = subscription.trial_start if trialing and subscription.trial_start else at
        if (trial_end - started).days > MAX_TRIAL_DAYS:
            raise _refuse(_("A trial lasts from 0 to %(max)s days.") % {"max": MAX_TRIAL_DAYS}, "invalid_trial")
        if not trialing and subscription.status != Status.ACTIVE:
            raise SubscriptionConflict(
                _("A trial can be added only to an active subscription."), code="trial_not_allowed"
            )
    cancel_at = update.cancel_at
    if isinstance(cancel_at, datetime):
        if cancel_at.utcoffset() is None:
            raise _refuse(_("cancel_at must include a time zone."), "cancel_at_naive")
        if cancel_at <= at:
            raise _refuse(
                _("A cancellation date must be in the future (after %(now)s).") % {"now": at.isoformat()},
                "cancel_at_past",
            )
        if cancel_at > at + timedelta(days=MAX_CANCEL_AT_DAYS):
            raise _refuse(
                _("A cancellation is scheduled at most %(days)s days ahead.") % {"days": MAX_CANCEL_AT_DAYS},
                "cancel_at_too_far",
            )
        if update.cancel_at_period_end is True:
            raise _refuse(_("Give cancel_at or cancel_at_period_end, not both."), "parameter_conflict")
    if update.collection_method is not KEEP or update.days_until_due is not KEEP:
        method = subscription.collection_method if update.collection_method is KEEP else update.collection_method
        if method not in Subscription.CollectionMethod.values:
            raise _refuse(_("Unknown collection method %(method)s.") % {"method": method}, "collection_method")
        days = update.days_until_due
        if method == Subscription.CollectionMethod.CHARGE_AUTOMATICALLY and isinstance(days, int):
            raise _refuse(_("Payment terms (days until due) only apply to invoices sent for payment."), "terms")
        if isinstance(days, int) and not 0 <= days <= 365:
            raise _refuse(_("Days until due run from 0 to 365."), "days_until_due")
    if update.metadata is not None:
        _check_metadata(update.metadata)
        _merged_metadata(subscription.metadata or {}, update.metadata)
    if update.coupon is not KEEP and update.coupon is not None and update.promotion_code:
        raise _refuse(_("Give a coupon or a promotion code, not both."), "coupon_and_code")
    return _Decided(items=items, proration=proration, pending=pending)


def _apply_settings(
    *, locked: Subscription, update: SubscriptionUpdate, at: datetime, acting_user: ActingUser
) -> list[str]:
    fields: list[str] = []
    if update.collection_method is not KEEP or update.days_until_due is not KEEP:
        if update.collection_method is not KEEP:
            locked.collection_method = update.collection_method
            fields.append("collection_method")
        if locked.collection_method == Subscription.CollectionMethod.SEND_INVOICE:
            if update.days_until_due is not KEEP and update.days_until_due is not None:
                locked.days_until_due = update.days_until_due
            elif locked.days_until_due is None:
                locked.days_until_due = DEFAULT_DAYS_UNTIL_DUE
        else:
            locked.days_until_due = None
        fields.append("days_until_due")
    if update.metadata is not None:
        locked.metadata = _merged_metadata(locked.metadata or {}, update.metadata)
        fields.append("metadata")
    if update.proration_credit_basis is not KEEP:
        # Before the item change below, which credits unused time by this basis.
        locked.proration_credit_basis = credit_basis_validate(update.proration_credit_basis)
        fields.append("proration_credit_basis")
    if fields:
        locked.save(update_fields=[*fields, "updated_at"])
        subscription_event(
            type="customer.subscription.updated",
            subscription=locked,
            at=at,
            acting_user=acting_user,
            updated_fields=sorted(set(fields)),
        )
    return fields


def _trial_add(
    *, locked: Subscription, trial_end: datetime, at: datetime, proration: str, acting_user: ActingUser
) -> None:
    """Stripe's trial on a running subscription: the period ends now, a trial runs to `trial_end`."""
    items = subscription_items_snapshot(subscription=locked)
    mrr_before = mrr_of(subscription=locked, items=items)
    lines = []
    percent_baked = False
    if proration != "none" and locked.current_period_start <= at < locked.current_period_end:
        discounts = current_period_discounts(subscription=locked)
        discount = discounts[0].discount if discounts else None
        percent_baked = discount is not None and discount.percent_off is not None
        lines = cancellation_credit(
            items=item_charges(items, discount=discount),
            period_start=locked.current_period_start,
            period_end=locked.current_period_end,
            at=at,
        )
    prices = {item.key: item.price for item in items}
    language = locked.customer.preferred_language
    created = InvoiceItem.objects.bulk_create(
        [
            InvoiceItem(
                customer_id=locked.customer_id,
                subscription_id=locked.pk,
                price=prices[line.key],
                description=proration_description(line=line, language=language),
                quantity=line.quantity,
                amount=line.amount,
                currency=locked.currency,
                period_start=line.period_start,
                period_end=line.period_end,
                proration=True,
                discountable=not percent_baked,
                tax_behavior=prices[line.key].tax_behavior,
                metadata={"item": line.key, "change_at": at.isoformat(), "reason": "trial_added"},
            )
            for line in lines
            if line.amount
        ]
    )
    invoice = None
    if proration == "always_invoice" and created:
        pending = pending_invoice_items(subscription=locked)  # the credit just created, and any other
        draft = DraftInvoice(
            customer_id=locked.customer_id,
            currency=locked.currency,
            billing_reason="subscription_update",
            lines=tuple(pending_item_line(item) for item in pending),
            discounts=(),
            subscription_id=locked.pk,
            period_start=at,
            period_end=locked.current_period_end,
            collection_method=locked.collection_method,
            days_until_due=locked.days_until_due,
        )
        invoice = invoice_issue(draft=draft, customer=locked.customer, at=at, acting_user=acting_user)
    previous = _set_status(locked, Status.TRIALING)
    locked.trial_start = at
    locked.trial_end = trial_end
    locked.current_period_start = at
    locked.current_period_end = trial_end
    locked.billing_cycle_anchor = trial_end
    locked.save()
    credited = sum(item.amount for item in created)
    change_record(
        subscription=locked,
        kind=SubscriptionChange.Kind.CHANGE,
        at=at,
        items_before=items,
        items_after=items,
        mrr_before=mrr_before,
        mrr_after=mrr_of(subscription=locked, items=items),
        acting_user=acting_user,
        proration_mode=proration,
        proration_amount=credited,
    )
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        previous_status=previous,
        trial_start=at,
        trial_end=trial_end,
        proration_total=credited,
        invoice=invoice.pk if invoice is not None else None,
    )


def _trial_shorten(*, locked: Subscription, trial_end: datetime, at: datetime, acting_user: ActingUser) -> None:
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


def _apply_trial(
    *, locked: Subscription, trial_end: datetime | Literal["now"], at: datetime, proration: str, acting_user: ActingUser
) -> None:
    if not isinstance(trial_end, datetime):  # "now"
        subscription_end_trial(subscription=locked, at=at, acting_user=acting_user)
        return
    trial_end = instant(at=trial_end, customer=locked.customer)
    if locked.status != Status.TRIALING:
        _trial_add(locked=locked, trial_end=trial_end, at=at, proration=proration, acting_user=acting_user)
    elif locked.trial_end is None or trial_end > locked.trial_end:
        subscription_extend_trial(subscription=locked, trial_end=trial_end, at=at, acting_user=acting_user)
    elif trial_end < locked.trial_end:
        _trial_shorten(locked=locked, trial_end=trial_end, at=at, acting_user=acting_user)


def _apply_cancellation(*, locked: Subscription, update: SubscriptionUpdate, at: datetime, user: ActingUser) -> None:
    scheduled = locked.cancel_at_period_end or locked.cancel_at is not None
    if isinstance(update.cancel_at, datetime):
        subscription_cancel_at(subscription=locked, cancel_at=update.cancel_at, at=at, acting_user=user)
    elif update.cancel_at_period_end is True:
        if not locked.cancel_at_period_end:
            subscription_cancel(subscription=locked, at=at, at_period_end=True, acting_user=user)
    elif (update.cancel_at is None or update.cancel_at_period_end is False) and scheduled:
        subscription_cancel_undo(subscription=locked, acting_user=user)


# With a savepoint: a refused update rolls back its own writes and leaves a caller's
# transaction usable (the API and the console call it as their outermost block).
@transaction.atomic
def subscription_update(
    *,
    subscription: Subscription,
    changes: SubscriptionUpdate,
    at: datetime | None = None,
    acting_user: ActingUser = None,
) -> Subscription:
    """Apply Stripe's subscription update `changes` at `at` (default: now), entirely or not at all."""
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    decided = _validate(subscription=locked, update=changes, at=at)
    _apply_settings(locked=locked, update=changes, at=at, acting_user=acting_user)
    if decided.pending:
        assert decided.items is not None
        pending_update_create(subscription=locked, items=decided.items, at=at, acting_user=acting_user)
    elif decided.items is not None or changes.billing_cycle_anchor_now:
        items = decided.items
        if items is None:
            items = tuple(
                ItemSpec(price=row.price, quantity=row.quantity)
                for row in SubscriptionItem.objects.filter(subscription_id=locked.pk).select_related("price")
            )
        subscription_change(
            subscription=locked,
            items=items,
            at=at,
            proration=decided.proration,  # type: ignore[arg-type]
            acting_user=acting_user,
            reset_anchor=changes.billing_cycle_anchor_now,
        )
    if changes.coupon is None:
        if subscription_lock(locked).coupon_id is not None:
            subscription_coupon_remove(subscription=locked, at=at, acting_user=acting_user)
    elif changes.coupon is not KEEP or changes.promotion_code:
        subscription_coupon_apply(
            subscription=locked,
            coupon=changes.coupon if isinstance(changes.coupon, Coupon) else None,
            promotion_code=changes.promotion_code,
            at=at,
            acting_user=acting_user,
        )
    if changes.trial_end is not KEEP:
        _apply_trial(
            locked=subscription_lock(locked),
            trial_end=changes.trial_end,
            at=at,
            proration=decided.proration,
            acting_user=acting_user,
        )
    _apply_cancellation(locked=subscription_lock(locked), update=changes, at=at, user=acting_user)
    fresh = subscription_lock(locked)
    if changes.trial_end is not KEEP:
        # A trial added or moved within the notice gets trial_will_end at once (re-armed per trial end).
        trial_will_end_send(subscription=fresh, at=at)
    return fresh


def subscription_preview_update(
    *, subscription: Subscription, changes: SubscriptionUpdate, at: datetime | None = None
) -> ChangePreview:
    """What an update of the items and/or the anchor would invoice, with the change preview's code.

    Writes nothing. Other parameters (trial, coupon, cancellation, settings) have no preview:
    they are refused with `preview_unsupported`.
    """
    loaded = subscription_load(subscription)
    at = instant(at=at, customer=loaded.customer)
    unsupported = (
        changes.coupon is not KEEP,
        changes.promotion_code is not None,
        changes.trial_end is not KEEP,
        changes.cancel_at is not KEEP,
        changes.cancel_at_period_end is not KEEP,
        changes.collection_method is not KEEP,
        changes.days_until_due is not KEEP,
        changes.metadata is not None,
        changes.payment_behavior != "allow_incomplete",
    )
    if any(unsupported):
        raise _refuse(_("Only item changes and billing_cycle_anchor=now can be previewed."), "preview_unsupported")
    decided = _validate(subscription=loaded, update=changes, at=at)
    items = decided.items
    if items is None:
        items = tuple(
            ItemSpec(price=row.price, quantity=row.quantity)
            for row in SubscriptionItem.objects.filter(subscription_id=loaded.pk).select_related("price__product")
        )
    return subscription_preview_change(
        subscription=loaded,
        items=items,
        at=at,
        proration=decided.proration,  # type: ignore[arg-type]
        reset_anchor=changes.billing_cycle_anchor_now,
    )
