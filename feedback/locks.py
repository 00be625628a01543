"""Row locks of the feedback app, ranked in the one lock order (`config.locking.LockRank`,
docs/billing.md): customer (customers.locks), then invitation; the consumer's cursor
(billing.locks.event_cursor_qs_for_update) comes before both."""

from __future__ import annotations

from django.db.models import QuerySet

from config.locking import LockRank, lock_helper
from customers.locks import customer_qs_for_update
from feedback.models import Invitation

__all__ = ["customer_qs_for_update", "invitation_qs_for_update"]


@lock_helper(LockRank.INVITATION)
def invitation_qs_for_update() -> QuerySet[Invitation]:
    return Invitation.objects.order_by("pk").select_for_update(of=("self",))
