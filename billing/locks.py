"""Row locks for billing models: one select_for_update helper per model.

Lock order (always take them in this order, never the reverse, to avoid deadlocks):
subscription -> promotion code -> coupon. Within one model, rows are locked in
primary-key order (`order_by("pk")`).

On SQLite `select_for_update` is a no-op; there, transactions start IMMEDIATE (see
config/settings/base.py), so writers serialize on the database lock instead.
"""

from __future__ import annotations

from django.db.models import QuerySet

from billing.models import Coupon, EventCursor, Payment, PromotionCode, Refund, Subscription


def subscription_qs_for_update() -> QuerySet[Subscription]:
    # of=("self",): callers may select_related the customer or coupon without locking them.
    return Subscription.objects.order_by("pk").select_for_update(of=("self",))


def promotion_code_qs_for_update() -> QuerySet[PromotionCode]:
    return PromotionCode.objects.order_by("pk").select_for_update(of=("self",))


def coupon_qs_for_update() -> QuerySet[Coupon]:
    return Coupon.objects.order_by("pk").select_for_update(of=("self",))


def event_cursor_qs_for_update() -> QuerySet[EventCursor]:
    """A consumer's cursor: locked so that two runs of one consumer never read the same events."""
    return EventCursor.objects.select_for_update()


def payment_qs_for_update() -> QuerySet[Payment]:
    """Payments, after the customer (balance) and the invoice (docs/payments.md: subscription ->
    customer -> invoice -> payment): what is left to refund is read and reserved under it."""
    return Payment.objects.order_by("pk").select_for_update(of=("self",))


def refund_qs_for_update() -> QuerySet[Refund]:
    """A refund's status moves under its row lock (taken after the customer and invoice, if any)."""
    return Refund.objects.order_by("pk").select_for_update(of=("self",))
