"""Pending updates (Stripe's `payment_behavior=pending_if_incomplete`).

An item change made with `pending_if_incomplete` issues its proration invoice at once
(`always_invoice`) but leaves the items as they are until that invoice is paid:

* paid at once (customer credit covered it, or it totals nothing): the change applies now,
  as a plain update would;
* else a `PendingUpdate` row waits. The payment path (`payment_recorded` hook, fired in
  billing/services/payments.py under the subscription's lock) applies it when the invoice
  is paid, recording `customer.subscription.pending_update_applied`;
* not paid by `expires_at` (TARIF_PENDING_UPDATE_EXPIRY_HOURS, 23 like Stripe), the beat
  sweeper (and a test clock's advance) discards it, voids its invoice when nothing was
  paid on it (the customer is not asked to pay for a change that will not happen) and
  records `customer.subscription.pending_update_expired`. A renewal that comes first (the
  proration was computed for the old period) also expires it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from billing.models import InvoiceItem, PendingUpdate, Price, Subscription, SubscriptionChange, TestClock
from billing.selectors import item_snapshot, subscription_items_snapshot
from billing.services.changes import _immediate_draft, _plan, subscription_change
from billing.services.payments import payment_recorded
from billing.services.subscriptions.common import (
    ItemSpec,
    change_record,
    instant,
    invoice_issue,
    items_apply,
    items_changed_event_data,
    mrr_of,
    subscription_event,
    subscription_lock,
)
from config.types import ActingUser
from invoices.models import Invoice
from invoices.services.lifecycle import invoice_void

PENDING = PendingUpdate.Status.PENDING


def _pending_data(pending: PendingUpdate) -> dict[str, object]:
    return {
        "invoice": pending.invoice_id,  # top level: the event API shows it as a public id
        "pending_update": {
            "expires_at": pending.expires_at,
            "items": pending.items,
            "proration_behavior": pending.proration_behavior,
        },
    }


def pending_update_create(
    *, subscription: Subscription, items: Sequence[ItemSpec], at: datetime, acting_user: ActingUser
) -> PendingUpdate | None:
    """Invoice the change now; hold it until paid (None when it applied at once). Caller holds the lock."""
    plan = _plan(subscription=subscription, items=items, at=at, mode="always_invoice")
    draft = _immediate_draft(plan, plan.new_pending)
    if plan.restart or draft is None:
        # A new cycle restarts the subscription (Stripe applies those at once too), and a
        # change that invoices nothing has nothing to wait for.
        subscription_change(
            subscription=subscription, items=items, at=at, proration="always_invoice", acting_user=acting_user
        )
        return None
    created = InvoiceItem.objects.bulk_create(plan.new_pending)
    draft = _immediate_draft(plan, created)
    assert draft is not None
    invoice = invoice_issue(draft=draft, customer=subscription.customer, at=at, acting_user=acting_user)
    proration_total = sum(line.amount for line in plan.proration_lines)
    if invoice.status == Invoice.Status.PAID:
        _apply_items(
            subscription=subscription,
            items=[{"price": item.price.pk, "quantity": item.quantity} for item in plan.after],
            at=at,
            proration_amount=proration_total,
            acting_user=acting_user,
            event_type="customer.subscription.updated",
            extra={"invoice": invoice.pk},
        )
        return None
    pending = PendingUpdate.objects.create(
        subscription=subscription,
        invoice=invoice,
        items=[{"price": item.price.pk, "quantity": item.quantity} for item in plan.after],
        proration_behavior="always_invoice",
        proration_amount=proration_total,
        period_start=subscription.current_period_start,
        requested_at=at,
        expires_at=at + timedelta(hours=settings.TARIF_PENDING_UPDATE_EXPIRY_HOURS),
    )
    subscription_event(
        type="customer.subscription.updated",
        subscription=subscription,
        at=at,
        acting_user=acting_user,
        **_pending_data(pending),
    )
    return pending


def _apply_items(
    *,
    subscription: Subscription,
    items: list[dict[str, int]],
    at: datetime,
    proration_amount: int,
    acting_user: ActingUser,
    event_type: str,
    extra: dict[str, object],
) -> None:
    before = subscription_items_snapshot(subscription=subscription)
    prices = Price.objects.select_related("product").in_bulk([item["price"] for item in items])
    after = tuple(
        item_snapshot(
            price=prices[item["price"]], quantity=item["quantity"], product_name=prices[item["price"]].product.name
        )
        for item in items
    )
    mrr_before = mrr_of(subscription=subscription, items=before)
    items_apply(subscription=subscription, before=before, after=after)
    change = change_record(
        subscription=subscription,
        kind=SubscriptionChange.Kind.CHANGE,
        at=at,
        items_before=before,
        items_after=after,
        mrr_before=mrr_before,
        mrr_after=mrr_of(subscription=subscription, items=after),
        acting_user=acting_user,
        proration_mode="always_invoice",
        proration_amount=proration_amount,
    )
    subscription_event(
        type=event_type,
        subscription=subscription,
        at=at,
        acting_user=acting_user,
        change=change.pk,
        **extra,
        **items_changed_event_data(before, after),
    )


def pending_update_on_payment(*, invoice: Invoice, at: datetime) -> None:
    """`payment_recorded` receiver: the invoice of a pending update is paid, apply the update.

    Runs in the payment's transaction, which already holds the subscription's lock.
    """
    if invoice.status != Invoice.Status.PAID or invoice.subscription_id is None:
        return
    pending = PendingUpdate.objects.filter(invoice_id=invoice.pk, status=PENDING).first()
    if pending is None:
        return
    subscription = subscription_lock(pending.subscription)
    # Paid after its expiry but before the sweeper discarded it: the customer paid, so it applies.
    if subscription.current_period_start != pending.period_start:
        _expire(pending=pending, subscription=subscription, at=at, void=False)
        return
    _apply_items(
        subscription=subscription,
        items=pending.items,
        at=at,
        proration_amount=pending.proration_amount,
        acting_user=None,
        event_type="customer.subscription.pending_update_applied",
        extra={"invoice": invoice.pk, "requested_at": pending.requested_at},
    )
    PendingUpdate.objects.filter(pk=pending.pk).update(status=PendingUpdate.Status.APPLIED, resolved_at=at)


def _expire(*, pending: PendingUpdate, subscription: Subscription, at: datetime, void: bool) -> None:
    voided = False
    invoice = pending.invoice
    if void and invoice.status == Invoice.Status.OPEN and not invoice.amount_paid:
        invoice_void(invoice=invoice, at=at, reason="pending update expired")
        voided = True
    PendingUpdate.objects.filter(pk=pending.pk).update(status=PendingUpdate.Status.EXPIRED, resolved_at=at)
    subscription_event(
        type="customer.subscription.pending_update_expired",
        subscription=subscription,
        at=at,
        invoice=pending.invoice_id,
        invoice_voided=voided,
        expires_at=pending.expires_at,
        items=pending.items,
    )


def pending_updates_expire(*, as_of: datetime | None = None, test_clock: TestClock | None = None) -> int:
    """Discard the pending updates whose time is up at `as_of` (real customers, or one clock's)."""
    candidates = PendingUpdate.objects.filter(status=PENDING)
    if test_clock is None:
        candidates = candidates.filter(subscription__customer__test_clock__isnull=True)
    else:
        candidates = candidates.filter(subscription__customer__test_clock=test_clock)
    expired = 0
    for pending_id, subscription_id in candidates.values_list("pk", "subscription_id"):
        with transaction.atomic():
            subscription = subscription_lock(Subscription(pk=subscription_id))
            now = instant(at=as_of, customer=subscription.customer)
            pending = PendingUpdate.objects.select_related("invoice").filter(pk=pending_id, status=PENDING).first()
            if pending is None:
                continue
            if now < pending.expires_at and subscription.current_period_start == pending.period_start:
                continue
            _expire(pending=pending, subscription=subscription, at=now, void=True)
            expired += 1
    return expired


def pending_update_register() -> None:
    """Connect the payment path (called once by BillingConfig.ready())."""
    payment_recorded.connect(pending_update_on_payment)
