"""Real-time plan and quantity changes, with proration to the second, and their preview.

`subscription_preview_change` and `subscription_change` share one planning function, so
the preview shows exactly what the change will do. A plan, for a change at `at`:

* Licensed items whose price or quantity changes are credited for the unused part of
  the current period and charged for the rest of it (billing/proration.py). When the
  current period was billed with a percent-off coupon, both are computed on the
  discounted price (the credit returns what was paid) and the resulting items are
  not discountable again.
* Proration modes: `create_prorations` leaves the lines as pending invoice items for
  the next invoice; `always_invoice` issues them at once, with the subscription's
  other pending items, in an invoice of reason `subscription_update`; `none` bills
  nothing for the change.
* Changing the billing cycle (monthly -> yearly) restarts the subscription at `at`
  (Stripe's behaviour): the anchor moves to `at`, the unused time of the old items is
  credited (except in mode `none`), and the new period is invoiced in full at once
  with its discount, whatever the mode.
* The usage so far of a metered price that the change removes becomes a pending item
  (it is billed with the next invoice, or the immediate one).
* During a trial nothing is prorated: the items change and the trial goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _

from billing.cycles import CycleSpec, Period
from billing.models import InvoiceItem, Price, Subscription, SubscriptionChange
from billing.proration import ProrationLine, change_proration
from billing.selectors import (
    ItemSnapshot,
    cycle_spec,
    item_charges,
    mrr_for,
    pending_invoice_items,
    period_after,
    subscription_items_snapshot,
)
from billing.services.coupons import (
    current_period_discounts,
    discount_counter_after_billing,
    discounts_after_billing,
    discounts_for_period,
    recurring_discounts,
)
from billing.services.credits import credit_basis_validate, credits_apply_basis
from billing.services.modes import modes_check
from billing.services.subscriptions import (
    ItemSpec,
    SubscriptionError,
    arrears_carry,
    arrears_used_items,
    change_record,
    changeable_check,
    instant,
    invoice_issue,
    items_apply,
    items_changed_event_data,
    items_validate,
    removed_meter_usage_items,
    resume_period,
    subscription_copy,
    subscription_event,
    subscription_lock,
)
from billing.services.upcoming import (
    advance_lines,
    pending_item_line,
    renewal_draft,
    scheduled_items,
    subscription_load,
    usage_for_period,
)
from billing.wallets.consumption import CreditsPreview
from config.events.log import EventRow, events_record_bulk
from config.types import ActingUser
from invoices.selectors import brand_for_customer, customer_balance
from invoices.services.drafts import invoice_build
from invoices.services.tax import tax_decision_for
from invoices.types import DraftInvoice, InvoicePreview

ProrationMode = Literal["create_prorations", "always_invoice", "none"]
PRORATION_MODES: tuple[str, ...] = ("create_prorations", "always_invoice", "none")

Status = Subscription.Status


@dataclass(frozen=True, slots=True)
class ChangePreview:
    """What a change would do, computed without writing anything."""

    at: datetime
    proration_mode: str
    cycle_changed: bool  # a new billing cycle: outside a trial, the subscription restarts at `at`
    proration_lines: tuple[ProrationLine, ...]  # credits (negative) then charges, for [at, period end)
    proration_total: int
    immediate_invoice: InvoicePreview | None  # issued at once (always_invoice, or a cycle change)
    upcoming_invoice: InvoicePreview | None  # the next invoice after the change (None if it ends)
    mrr_before: int
    mrr_after: int


@dataclass(frozen=True, slots=True)
class _Plan:
    subscription: Subscription
    at: datetime
    mode: str
    before: tuple[ItemSnapshot, ...]
    after: tuple[ItemSnapshot, ...]
    cycle: CycleSpec
    cycle_changed: bool
    restart: bool  # new cycle outside a trial: new period from `at`, invoiced at once
    proration_lines: tuple[ProrationLine, ...]
    new_pending: tuple[InvoiceItem, ...]  # unsaved: proration lines and usage of removed meters
    existing_pending: tuple[InvoiceItem, ...]
    new_period: Period | None  # when `restart`
    mrr_before: int
    mrr_after: int

    @property
    def invoices_now(self) -> bool:
        return self.restart or self.mode == "always_invoice"


def _plan(
    *,
    subscription: Subscription,
    items: Sequence[ItemSpec],
    at: datetime,
    mode: str,
    reset_anchor: bool = False,
    basis: str | None = None,
) -> _Plan:
    """Everything a change does, from a loaded (or locked) subscription. Writes nothing.

    `reset_anchor` (Stripe's `billing_cycle_anchor=now`, subupdate) restarts the subscription at
    `at` as a cycle change does: unused time credited, the new period invoiced at once.
    `basis`: the proration credit basis (classic, flexible; None: the subscription's).
    """
    if mode not in PRORATION_MODES:
        raise SubscriptionError(
            _("Unknown proration mode %(mode)s; use one of %(modes)s.")
            % {"mode": mode, "modes": ", ".join(PRORATION_MODES)},
            code="proration_mode",
        )
    changeable_check(subscription)
    modes_check(livemode=subscription.customer.livemode, objects=[spec.price for spec in items])
    start, end = subscription.current_period_start, subscription.current_period_end
    if not start <= at <= end:
        raise SubscriptionError(
            _("A change applies within the current period (%(start)s to %(end)s).")
            % {"start": start.isoformat(), "end": end.isoformat()},
            code="outside_period",
        )
    before = subscription_items_snapshot(subscription=subscription)
    validated = items_validate(
        items=items, allow_one_time=False, kept_price_ids=frozenset(item.price.pk for item in before)
    )
    if validated.currency != subscription.currency:
        raise SubscriptionError(
            _("The new prices are in %(new)s; this subscription is in %(currency)s: start a new subscription.")
            % {"new": validated.currency, "currency": subscription.currency},
            code="currency_change",
        )
    # In the order the rows will be read back: kept items where they were, new ones after.
    position = {item.price.pk: index for index, item in enumerate(before)}
    after = tuple(sorted(validated.recurring, key=lambda item: position.get(item.price.pk, len(position))))
    after = arrears_carry(before=before, after=after, at=at)  # issue 16, cycles
    trialing = subscription.status == Status.TRIALING
    cycle_changed = validated.cycle != cycle_spec(subscription.cycle)
    restart = (cycle_changed or reset_anchor) and not trialing

    existing_pending = tuple(pending_invoice_items(subscription=subscription))
    lines: list[ProrationLine] = []
    discount_baked = False
    if not trialing and mode != "none":
        discounts = [draft.discount for draft in current_period_discounts(subscription=subscription)]
        discount_baked = bool(discounts)
        lines = change_proration(
            old_items=item_charges(before, discounts=discounts),
            new_items=[] if restart else item_charges(after, discounts=discounts),
            period_start=start,
            period_end=end,
            at=at,
        )
        # Credits never exceed what was billed for the unused time (billing/services/credits.py).
        unchanged = {item.key for item in before} - {line.key for line in lines}
        lines = credits_apply_basis(
            subscription=subscription, lines=lines, at=at, basis=basis, kept_keys=unchanged, pending=existing_pending
        )
        # Worded once, in the customer's language: the preview and the invoice agree.
        language = subscription.customer.preferred_language
        lines = [replace(line, description=proration_description(line=line, language=language)) for line in lines]
    prices = {item.key: item.price for item in (*before, *after)}
    orphans = [int(line.key.split(":", 1)[1]) for line in lines if line.key not in prices]
    if orphans:  # flexible: prices billed this period that are no longer items
        prices.update({f"price:{pk}": price for pk, price in Price.objects.in_bulk(orphans).items()})
    new_pending = [
        InvoiceItem(
            customer_id=subscription.customer_id,
            subscription_id=subscription.pk,
            price=prices[line.key],
            description=line.description,
            quantity=line.quantity,
            amount=line.amount,
            currency=subscription.currency,
            period_start=line.period_start,
            period_end=line.period_end,
            proration=True,
            discountable=not discount_baked,
            tax_behavior=prices[line.key].tax_behavior,
            metadata={"item": line.key, "change_at": at.isoformat()},
        )
        for line in lines
    ]
    new_pending += removed_meter_usage_items(subscription=subscription, before=before, after=after, at=at)
    new_pending += arrears_used_items(subscription=subscription, before=before, after=after, at=at)
    tz = subscription.customer.timezone
    new_period = None
    if restart:
        new_period = resume_period(subscription=_restarted(subscription, cycle=validated.cycle, at=at), tz=tz, at=at)
    discounts_for_mrr = [draft.discount for draft in recurring_discounts(subscription=subscription)]
    return _Plan(
        subscription=subscription,
        at=at,
        mode=mode,
        before=before,
        after=after,
        cycle=validated.cycle,
        cycle_changed=cycle_changed,
        restart=restart,
        proration_lines=tuple(lines),
        new_pending=tuple(new_pending),
        existing_pending=existing_pending,
        new_period=new_period,
        mrr_before=mrr_for(
            items=before,
            cycle=cycle_spec(subscription.cycle),
            currency=subscription.currency,
            discounts=discounts_for_mrr,
        ),
        mrr_after=mrr_for(
            items=after, cycle=validated.cycle, currency=subscription.currency, discounts=discounts_for_mrr
        ),
    )


def _restarted(subscription: Subscription, *, cycle: CycleSpec, at: datetime, period: Period | None = None) -> Any:
    """An unsaved copy of the subscription as a restart at `at` on `cycle` leaves it."""
    fields: dict[str, Any] = {"cycle": cycle.to_dict(), "billing_cycle_anchor": at}
    if period is not None:
        fields.update(
            current_period_start=period.start,
            current_period_end=period.end,
            discount_periods_applied=discount_counter_after_billing(
                coupon=subscription.coupon if subscription.coupon_id else None,
                periods_applied=subscription.discount_periods_applied,
            ),
        )
    restarted = subscription_copy(subscription, **fields)
    if period is not None:
        # As the invoice of the new period leaves them once issued (its finalization counts them).
        restarted.active_discounts = discounts_after_billing(subscription=subscription)  # type: ignore[attr-defined]
    return restarted


def _immediate_draft(plan: _Plan, new_pending: Sequence[InvoiceItem]) -> DraftInvoice | None:
    """The invoice issued at once: the change's items (and, on a restart, the new period)."""
    if not plan.invoices_now:
        return None
    subscription = plan.subscription
    lines = [pending_item_line(item) for item in (*new_pending, *plan.existing_pending)]
    discounts: tuple[Any, ...] = ()
    period_start, period_end = plan.at, subscription.current_period_end
    if plan.restart:
        assert plan.new_period is not None
        restarted = _restarted(subscription, cycle=plan.cycle, at=plan.at)
        lines = (
            advance_lines(
                subscription=restarted, tz=subscription.customer.timezone, items=plan.after, period=plan.new_period
            )
            + lines
        )
        discounts = discounts_for_period(subscription=subscription)
        period_start, period_end = plan.new_period.start, plan.new_period.end
    if not lines:
        return None
    return DraftInvoice(
        customer_id=subscription.customer_id,
        currency=subscription.currency,
        billing_reason="subscription_update",
        lines=tuple(lines),
        discounts=discounts,
        subscription_id=subscription.pk,
        period_start=period_start,
        period_end=period_end,
        collection_method=subscription.collection_method,
        days_until_due=subscription.days_until_due,
    )


def _upcoming_draft(plan: _Plan) -> DraftInvoice | None:
    """The next invoice once the change is made (for the preview)."""
    subscription = plan.subscription
    tz = subscription.customer.timezone
    if plan.restart:
        assert plan.new_period is not None
        subscription = _restarted(subscription, cycle=plan.cycle, at=plan.at, period=plan.new_period)
        pending: Sequence[InvoiceItem] = ()
        usage_start = plan.at
    else:
        pending = () if plan.invoices_now else (*plan.existing_pending, *plan.new_pending)
        usage_start = subscription.current_period_start
    period = period_after(subscription=subscription, tz=tz)
    items = plan.after
    if not plan.restart:
        items = scheduled_items(subscription=subscription, until=period.start) or plan.after
    usage_period = Period(start=subscription.current_period_start, end=subscription.current_period_end)
    usage = usage_for_period(subscription=subscription, items=plan.after, start=usage_start, end=plan.at)
    usage = {key._replace(start=usage_period.start, end=usage_period.end): v for key, v in usage.items()}
    return renewal_draft(
        subscription=subscription,
        tz=tz,
        items=items,
        usage_items=plan.after,
        period_start=period.start,
        period_end=period.end,
        usage=usage,
        usage_period=usage_period,
        pending_items=pending,
        discounts=discounts_for_period(subscription=subscription),
        recurring=not subscription.cancel_at_period_end,
    )


def proration_description(*, line: ProrationLine, language: str) -> str:
    """The proration line as the customer reads it on the invoice, in its language."""
    with translation.override(language):
        if line.amount < 0:
            return _("Unused time on %(item)s") % {"item": line.item_description}
        return _("Remaining time on %(item)s") % {"item": line.item_description}


def subscription_preview_change(
    *,
    subscription: Subscription,
    items: Sequence[ItemSpec],
    at: datetime | None = None,
    proration: ProrationMode = "create_prorations",
    reset_anchor: bool = False,
    proration_credit_basis: str | None = None,
) -> ChangePreview:
    """What `subscription_change` would do with the same arguments. Writes nothing.

    About eight queries whatever the number of items: the subscription (with customer,
    brand and coupon), its items, the new prices' products when not loaded, pending
    items, a scheduled change, tax rates and the customer's balance (plus usage when
    metered prices are involved).
    """
    subscription = subscription_load(subscription)
    customer = subscription.customer
    at = instant(at=at, customer=customer)
    basis = credit_basis_validate(proration_credit_basis) if proration_credit_basis else None
    plan = _plan(subscription=subscription, items=items, at=at, mode=proration, reset_anchor=reset_anchor, basis=basis)
    brand = brand_for_customer(customer=customer)
    decision = tax_decision_for(brand=brand, customer=customer)
    balance = customer_balance(customer_id=customer.pk, currency=subscription.currency)

    # Prepaid credits pay first, the invoice issued now before the next one (as finalization takes them).
    credits = CreditsPreview(customer_id=customer.pk, currency=subscription.currency)
    immediate = None
    immediate_draft = _immediate_draft(plan, plan.new_pending)
    if immediate_draft is not None:
        immediate = invoice_build(
            customer=customer,
            draft=immediate_draft,
            brand=brand,
            decision=decision,
            balance=balance,
            credits=credits,
            at=at,
        )
        # Finalization takes credit from the balance, or gives it a negative total.
        balance -= immediate.balance_applied if immediate.total >= 0 else immediate.total
    upcoming_draft = _upcoming_draft(plan)
    upcoming = None
    if upcoming_draft is not None:
        upcoming = invoice_build(
            customer=customer,
            draft=upcoming_draft,
            brand=brand,
            decision=decision,
            balance=balance,
            credits=credits,
            at=upcoming_draft.period_start or at,
        )
    return ChangePreview(
        at=at,
        proration_mode=proration,
        cycle_changed=plan.cycle_changed,
        proration_lines=plan.proration_lines,
        proration_total=sum(line.amount for line in plan.proration_lines),
        immediate_invoice=immediate,
        upcoming_invoice=upcoming,
        mrr_before=plan.mrr_before,
        mrr_after=plan.mrr_after,
    )


@transaction.atomic(savepoint=False)
def subscription_change(
    *,
    subscription: Subscription,
    items: Sequence[ItemSpec],
    at: datetime | None = None,
    proration: ProrationMode = "create_prorations",
    proration_credit_basis: str | None = None,
    acting_user: ActingUser = None,
    reset_anchor: bool = False,
) -> SubscriptionChange:
    """Change the subscription's items at `at` (default: now), prorating as `proration` says.

    In one transaction under the subscription's lock: the items, the pending proration
    items (or the invoice issued at once), the history row and the event, so the
    subscription, its upcoming invoice and the customer's balance agree on commit.
    `proration_credit_basis` (classic, flexible, or "" for the platform default), when given,
    becomes the subscription's basis and credits this change.
    """
    locked = subscription_lock(subscription)
    at = instant(at=at, customer=locked.customer)
    if proration_credit_basis is not None:
        locked.proration_credit_basis = credit_basis_validate(proration_credit_basis)
    plan = _plan(subscription=locked, items=items, at=at, mode=proration, reset_anchor=reset_anchor)
    created = InvoiceItem.objects.bulk_create(plan.new_pending)
    items_apply(subscription=locked, before=plan.before, after=plan.after)
    immediate_draft = _immediate_draft(plan, created)
    if plan.restart:
        assert plan.new_period is not None
        restarted = _restarted(locked, cycle=plan.cycle, at=at, period=plan.new_period)
        for name in ("cycle", "billing_cycle_anchor", "current_period_start", "current_period_end"):
            setattr(locked, name, getattr(restarted, name))
        locked.discount_periods_applied = restarted.discount_periods_applied
    elif plan.cycle_changed:  # during a trial: the trial goes on, the next period uses the new cycle
        locked.cycle = plan.cycle.to_dict()
    locked.save()
    invoice = None
    if immediate_draft is not None:
        invoice = invoice_issue(draft=immediate_draft, customer=locked.customer, at=at, acting_user=acting_user)

    proration_total = sum(line.amount for line in plan.proration_lines)
    change = change_record(
        subscription=locked,
        kind=SubscriptionChange.Kind.CHANGE,
        at=at,
        items_before=plan.before,
        items_after=plan.after,
        mrr_before=plan.mrr_before,
        mrr_after=plan.mrr_after,
        acting_user=acting_user,
        proration_mode=proration,
        proration_amount=proration_total,
    )
    events_record_bulk(
        rows=[
            EventRow(
                type="invoiceitem.created",
                object_type="invoice_item",
                object_id=item.pk,
                customer_id=locked.customer_id,
                occurred_at=at,
                data={"amount": item.amount, "currency": item.currency, "proration": item.proration},
                acting_user_id=getattr(acting_user, "pk", None),
            )
            for item in created
        ]
    )
    subscription_event(
        type="customer.subscription.updated",
        subscription=locked,
        at=at,
        acting_user=acting_user,
        change=change.pk,
        proration_mode=proration,
        proration_total=proration_total,
        invoice=invoice.pk if invoice is not None else None,
        cycle_changed=plan.cycle_changed,
        **items_changed_event_data(plan.before, plan.after),
    )
    return change
