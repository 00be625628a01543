"""Creating a subscription: items, trial, anchor, coupon, the first invoice, and its preview.

`subscription_preview_create` and `subscription_create` share one planning function
(`_create_plan`), so the console's and the API's preview of a new subscription's first
invoice is what the creation will issue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from billing.cycles import (
    AnchorConfig,
    CycleSpec,
    CycleSpecError,
    Period,
    anchor_from_config,
    next_boundary,
    period_containing,
)
from billing.models import (
    Coupon,
    InvoiceItem,
    PromotionCode,
    Subscription,
    SubscriptionChange,
    SubscriptionDiscount,
    SubscriptionItem,
)
from billing.selectors import (
    mrr_for,
    pending_invoice_items,
)
from billing.services.coupons import (
    DiscountSpec,
    coupon_redeem,
    coupon_validate,
    discount_row_fields,
    discount_specs_resolve,
    discounts_for_period,
    promotion_code_resolve,
    recurring_discounts,
)
from billing.services.credits import credit_basis_validate
from billing.services.modes import modes_check
from billing.services.subscriptions.common import (
    DEFAULT_DAYS_UNTIL_DUE,
    MAX_TRIAL_DAYS,
    CustomerCurrencyMismatch,
    ItemSpec,
    Status,
    SubscriptionError,
    ValidatedItems,
    _advance_discount_counter,
    change_record,
    instant,
    invoice_issue,
    items_validate,
    subscription_event,
)
from billing.services.upcoming import free_period_lines, pending_item_line, renewal_draft, trial_lines
from billing.wallets.consumption import CreditsPreview
from config.types import ActingUser, JsonDict
from customers.models import Customer
from invoices.services.drafts import invoice_build
from invoices.types import DraftInvoice, InvoicePreview

FIRST_PERIOD_BEHAVIORS = ("create_prorations", "none")


def anchor_first_period_default() -> str:
    """TARIF_ANCHOR_FIRST_PERIOD: whether the time up to an anchor is billed (prorated) or free."""
    value = getattr(settings, "TARIF_ANCHOR_FIRST_PERIOD", "create_prorations")
    if value not in FIRST_PERIOD_BEHAVIORS:
        raise ValueError(f"TARIF_ANCHOR_FIRST_PERIOD must be one of {FIRST_PERIOD_BEHAVIORS}, not {value!r}")
    return value


def _cycle_refusal(error: CycleSpecError, *, rule_given: bool) -> SubscriptionError:
    """A cycle or anchor-rule problem as the creation's refusal, naming the parameter at fault."""
    if not rule_given:
        return SubscriptionError(str(error), code="invalid_cycle")
    field = error.field or ""
    if field == "month":
        message = _("A billing month only applies to yearly cycles, or to cycles of several months.")
    elif field == "billing_cycle_anchor_config":
        message = _(
            "A billing day of the month only applies to monthly or yearly cycles; "
            "weekly and daily cycles have none, and calendar cycles bill on their own dates."
        )
    else:
        message = str(error)
    refusal = SubscriptionError(message, code="invalid_anchor_config")
    # Read by the API's problem handler (config/api/exceptions.py domain_problem).
    refusal.field = (  # type: ignore[attr-defined]
        field if field.startswith("billing_cycle_anchor_config") else f"billing_cycle_anchor_config.{field}"
    ).rstrip(".")
    return refusal


def _trial_end(*, at: datetime, days: int, tz: str) -> datetime:
    # Calendar days in the customer's zone: a 14-day trial ends at the same wall-clock time.
    return next_boundary(CycleSpec.every(days, "day"), anchor=at, tz=tz, after=at)


@dataclass(frozen=True, slots=True)
class _CreatePlan:
    subscription: Subscription  # unsaved, with every column the creation gives it
    validated: ValidatedItems
    at: datetime
    trial_end: datetime | None
    promotion: PromotionCode | None

    @property
    def first_period_free(self) -> bool:
        """Created without proration: the time up to the first billing date costs nothing."""
        free_until = self.subscription.free_until
        return free_until is not None and self.trial_end is None and free_until > self.at


@dataclass(frozen=True, slots=True)
class CreatePreview:
    """What `subscription_create` would do with the same arguments, computed without writing."""

    at: datetime
    status: str  # trialing or active
    trial_end: datetime | None
    current_period_start: datetime
    current_period_end: datetime  # the next invoice's date (the first renewal, or the trial's end)
    first_invoice: InvoicePreview  # issued at once (a zero invoice for a trial)
    mrr: int
    currency: str


def _create_plan(
    *,
    customer: Customer,
    items: Sequence[ItemSpec],
    at: datetime | None,
    trial_days: int | None,
    billing_cycle_anchor: datetime | None,
    coupon: Coupon | None,
    promotion_code: str | None,
    collection_method: str,
    days_until_due: int | None,
    trial_end_behavior: str,
    metadata: JsonDict | None,
    billing_cycle_anchor_config: AnchorConfig | None = None,
    proration_behavior: str | None = None,
    discounts: Sequence[DiscountSpec] = (),
    proration_credit_basis: str = "",
) -> _CreatePlan:
    """Everything a creation decides, checked, on an unsaved subscription. Writes nothing."""
    modes_check(
        livemode=customer.livemode,
        objects=[*(spec.price for spec in items), coupon, *(spec.coupon for spec in discounts)],
    )
    credit_basis_validate(proration_credit_basis)
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

    if billing_cycle_anchor is not None and billing_cycle_anchor_config is not None:
        both = SubscriptionError(
            _("Give a billing cycle anchor or an anchor rule, not both."), code="anchor_and_anchor_config"
        )
        both.field = "billing_cycle_anchor_config"  # type: ignore[attr-defined]
        raise both
    proration_behavior = proration_behavior or anchor_first_period_default()
    if proration_behavior not in FIRST_PERIOD_BEHAVIORS:
        raise SubscriptionError(
            _("On creation, proration_behavior is one of %(values)s.") % {"values": ", ".join(FIRST_PERIOD_BEHAVIORS)},
            code="proration_behavior",
        )

    trial_end = _trial_end(at=at, days=trial_days, tz=tz) if trial_days else None
    first_billed = trial_end or at
    try:
        if billing_cycle_anchor_config is not None:
            # The rule counts from the first billed instant: after a trial, its first date after the trial.
            rule = anchor_from_config(validated.cycle, billing_cycle_anchor_config, tz=tz, start=first_billed)
            anchor = rule.anchor
        else:
            anchor = (billing_cycle_anchor or first_billed).astimezone(UTC).replace(microsecond=0)
        nominal = period_containing(validated.cycle, anchor=anchor, tz=tz, at=first_billed)
    except CycleSpecError as error:
        raise _cycle_refusal(error, rule_given=billing_cycle_anchor_config is not None) from error
    period_end = trial_end or nominal.end
    # proration_behavior=none: the stub up to the first billing date is free (Stripe's rule).
    free_until = nominal.end if proration_behavior == "none" and nominal.start < first_billed else None

    promotion = None
    if promotion_code:
        promotion = promotion_code_resolve(code=promotion_code, customer=customer, at=at)
        if coupon is not None and coupon.pk != promotion.coupon_id:
            raise SubscriptionError(_("Give a coupon or a promotion code, not both."), code="coupon_and_code")
        coupon = promotion.coupon
    # The single coupon of old comes first, then the list, in order (issue 16 item 6).
    wanted = ([DiscountSpec(coupon=coupon)] if coupon is not None else []) + list(discounts)
    resolved = discount_specs_resolve(specs=wanted, customer=customer, at=at)
    if promotion is not None and resolved:
        resolved[0] = (resolved[0][0], promotion)
    modes_check(livemode=customer.livemode, objects=[found for found, _code in resolved])
    coupon, promotion = resolved[0] if resolved else (None, None)

    subscription = Subscription(
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
        billing_cycle_anchor_config=(
            billing_cycle_anchor_config.to_dict() if billing_cycle_anchor_config is not None else None
        ),
        free_until=free_until,
        proration_credit_basis=proration_credit_basis,
    )
    subscription._tarif_staged_discounts = [  # type: ignore[attr-defined]
        SubscriptionDiscount(position=position, **discount_row_fields(coupon=found, promotion_code=code, at=at))
        for position, (found, code) in enumerate(resolved)
    ]
    return _CreatePlan(subscription=subscription, validated=validated, at=at, trial_end=trial_end, promotion=promotion)


def _one_time_items(plan: _CreatePlan) -> list[InvoiceItem]:
    """One-time prices as (unsaved) pending items of the first invoice."""
    subscription = plan.subscription
    return [
        InvoiceItem(
            customer=subscription.customer,
            subscription=subscription,
            price=snapshot.price,
            description=snapshot.label,
            quantity=snapshot.quantity,
            amount=snapshot.full_amount(),
            currency=snapshot.price.currency,
            tax_behavior=snapshot.price.tax_behavior,
        )
        for snapshot in plan.validated.one_time
    ]


def _first_draft(plan: _CreatePlan, *, pending: Sequence[InvoiceItem]) -> DraftInvoice:
    """The first invoice: a zero invoice for the trial, or the first period in advance."""
    subscription = plan.subscription
    if plan.trial_end:
        return DraftInvoice(
            customer_id=subscription.customer_id,
            currency=subscription.currency,
            billing_reason="subscription_create",
            lines=tuple(trial_lines(items=plan.validated.recurring, period=Period(start=plan.at, end=plan.trial_end)))
            + tuple(pending_item_line(item) for item in pending),
            subscription_id=subscription.pk,
            period_start=plan.at,
            period_end=plan.trial_end,
            collection_method=subscription.collection_method,
            days_until_due=subscription.days_until_due,
        )
    if plan.first_period_free:
        return DraftInvoice(
            customer_id=subscription.customer_id,
            currency=subscription.currency,
            billing_reason="subscription_create",
            lines=tuple(
                free_period_lines(
                    items=plan.validated.recurring, period=Period(start=plan.at, end=subscription.current_period_end)
                )
            )
            + tuple(pending_item_line(item) for item in pending),
            subscription_id=subscription.pk,
            period_start=plan.at,
            period_end=subscription.current_period_end,
            collection_method=subscription.collection_method,
            days_until_due=subscription.days_until_due,
        )
    return renewal_draft(
        subscription=subscription,
        tz=subscription.customer.timezone,
        items=plan.validated.recurring,
        period_start=plan.at,
        period_end=subscription.current_period_end,
        usage={},
        usage_items=(),
        pending_items=pending,
        discounts=discounts_for_period(subscription=subscription),
        billing_reason="subscription_create",
    )


def _mrr(plan: _CreatePlan) -> int:
    subscription = plan.subscription
    return mrr_for(
        items=plan.validated.recurring,
        cycle=plan.validated.cycle,
        currency=subscription.currency,
        discounts=[draft_discount.discount for draft_discount in recurring_discounts(subscription=subscription)],
    )


def subscription_preview_create(
    *,
    customer: Customer,
    items: Sequence[ItemSpec],
    at: datetime | None = None,
    trial_days: int | None = None,
    billing_cycle_anchor: datetime | None = None,
    coupon: Coupon | None = None,
    promotion_code: str | None = None,
    collection_method: str = Subscription.CollectionMethod.CHARGE_AUTOMATICALLY,
    days_until_due: int | None = None,
    trial_end_behavior: str = Subscription.TrialEndBehavior.CREATE_INVOICE,
    billing_cycle_anchor_config: AnchorConfig | None = None,
    proration_behavior: str | None = None,
    discounts: Sequence[DiscountSpec] = (),
    proration_credit_basis: str = "",
) -> CreatePreview:
    """The first invoice `subscription_create` would issue with the same arguments. Writes nothing.

    Refuses what the creation refuses (mode, currency, items, trial, terms, a coupon or
    promotion code that cannot be redeemed now), with the same errors.
    """
    plan = _create_plan(
        customer=customer,
        items=items,
        at=at,
        trial_days=trial_days,
        billing_cycle_anchor=billing_cycle_anchor,
        coupon=coupon,
        promotion_code=promotion_code,
        collection_method=collection_method,
        days_until_due=days_until_due,
        trial_end_behavior=trial_end_behavior,
        metadata=None,
        billing_cycle_anchor_config=billing_cycle_anchor_config,
        proration_behavior=proration_behavior,
        discounts=discounts,
        proration_credit_basis=proration_credit_basis,
    )
    subscription = plan.subscription
    for staged in subscription._tarif_staged_discounts:  # type: ignore[attr-defined]
        # What coupon_redeem checks under its lock at creation.
        coupon_validate(
            coupon=staged.coupon,
            at=plan.at,
            currency=subscription.currency,
            product_ids={snapshot.price.product_id for snapshot in plan.validated.recurring},
        )
    # The customer's pending items first (older rows), then the new one-time prices, as created.
    pending = [*pending_invoice_items(subscription=subscription), *_one_time_items(plan)]
    first_invoice = invoice_build(
        customer=customer,
        draft=_first_draft(plan, pending=pending),
        credits=CreditsPreview(customer_id=customer.pk, currency=subscription.currency),
        at=plan.at,
    )
    if not plan.trial_end:
        _advance_discount_counter(subscription)  # as the creation does before counting MRR (unsaved here)
        for staged in subscription._tarif_staged_discounts:  # type: ignore[attr-defined]
            staged.periods_applied += 1  # as the first invoice's finalization does
    return CreatePreview(
        at=plan.at,
        status=subscription.status,
        trial_end=plan.trial_end,
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        first_invoice=first_invoice,
        mrr=_mrr(plan),
        currency=subscription.currency,
    )


@transaction.atomic(savepoint=False)
def subscription_create(
    *,
    customer: Customer,
    items: Sequence[ItemSpec],
    at: datetime | None = None,
    trial_days: int | None = None,
    billing_cycle_anchor: datetime | None = None,
    coupon: Coupon | None = None,
    promotion_code: str | None = None,
    collection_method: str = Subscription.CollectionMethod.CHARGE_AUTOMATICALLY,
    days_until_due: int | None = None,
    trial_end_behavior: str = Subscription.TrialEndBehavior.CREATE_INVOICE,
    metadata: JsonDict | None = None,
    discounts: Sequence[DiscountSpec] = (),
    proration_credit_basis: str = "",
    acting_user: ActingUser = None,
    billing_cycle_anchor_config: AnchorConfig | None = None,
    proration_behavior: str | None = None,
) -> Subscription:
    """Subscribe `customer` to `items` and issue the first invoice.

    `discounts`: coupons or promotion codes, applied in this order after `coupon` /
    `promotion_code` (docs/billing.md "Several discounts"). `proration_credit_basis`:
    classic, flexible or "" (the platform default).

    `trial_days` defaults to the longest trial of the recurring prices (0: no trial).
    One-time prices become invoice items on the first invoice. Without a trial the
    first invoice bills the first period in advance (prorated up to an explicit
    anchor) with the discount; with one it is a zero invoice for the trial.
    `collection_method="send_invoice"` gives net-`days_until_due` terms (default 30).
    `billing_cycle_anchor_config` picks the anchor by a rule ("day 31 of each month",
    billing/cycles.py `anchor_from_config`) instead of `billing_cycle_anchor`; with either,
    `proration_behavior` (default TARIF_ANCHOR_FIRST_PERIOD) says whether the time up to
    the first billing date is billed prorated now (`create_prorations`) or free (`none`).
    """
    plan = _create_plan(
        customer=customer,
        items=items,
        at=at,
        trial_days=trial_days,
        billing_cycle_anchor=billing_cycle_anchor,
        coupon=coupon,
        promotion_code=promotion_code,
        collection_method=collection_method,
        days_until_due=days_until_due,
        trial_end_behavior=trial_end_behavior,
        metadata=metadata,
        billing_cycle_anchor_config=billing_cycle_anchor_config,
        proration_behavior=proration_behavior,
        discounts=discounts,
        proration_credit_basis=proration_credit_basis,
    )
    subscription, validated, at, trial_end = plan.subscription, plan.validated, plan.at, plan.trial_end
    staged = subscription._tarif_staged_discounts  # type: ignore[attr-defined]
    subscription.save()
    SubscriptionItem.objects.bulk_create(
        [
            SubscriptionItem(subscription=subscription, price=snapshot.price, quantity=snapshot.quantity)
            for snapshot in validated.recurring
        ]
    )
    for discount in staged:
        coupon_redeem(
            coupon=discount.coupon,
            customer=customer,
            at=at,
            currency=validated.currency,
            product_ids={snapshot.price.product_id for snapshot in validated.recurring},
            promotion_code=discount.promotion_code,
            subscription_id=subscription.pk,
            acting_user=acting_user,
        )
        discount.subscription = subscription
    # Saved one by one (a handful at most) so the first invoice records their ids.
    for discount in staged:
        discount.save()
    subscription.active_discounts = staged  # type: ignore[attr-defined]
    del subscription._tarif_staged_discounts  # type: ignore[attr-defined]
    for item in _one_time_items(plan):
        item.save()

    pending = pending_invoice_items(subscription=subscription)
    draft = _first_draft(plan, pending=pending)
    if not trial_end:
        _advance_discount_counter(subscription)
        subscription.save(update_fields=["discount_periods_applied", "updated_at"])

    change_record(
        subscription=subscription,
        kind=SubscriptionChange.Kind.CREATE,
        at=at,
        items_before=(),
        items_after=validated.recurring,
        mrr_before=0,
        mrr_after=_mrr(plan),
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
        # A trial shorter than the trial_will_end notice gets it at once (issue 16).
        # deferred: lifecycle_notices imports this package (its common module)
        from billing.services.lifecycle_notices import trial_will_end_send

        trial_will_end_send(subscription=subscription, at=at)
    invoice_issue(draft=draft, customer=customer, at=at, acting_user=acting_user)
    del subscription.active_discounts  # type: ignore[attr-defined]  # the invoice moved their counters
    return subscription
