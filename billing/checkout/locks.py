"""Row lock of a checkout session: taken first, before anything its completion creates or redeems
(promotion code, coupon, customer, invoice...), so it ranks before them (config/locking.py)."""

from __future__ import annotations

from django.db.models import QuerySet

from billing.checkout.models import CheckoutSession
from config.locking import LockRank, lock_helper


@lock_helper(LockRank.CHECKOUT_SESSION)
def checkout_session_qs_for_update() -> QuerySet[CheckoutSession]:
    return CheckoutSession.objects.order_by("pk").select_for_update(of=("self",))
