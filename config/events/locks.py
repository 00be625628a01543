"""Row locks of the event log: one select_for_update helper per model.

A consumer's cursor is locked for the whole of one pass (`config.events.consumers`), so
two runs of one consumer take turns instead of reading the same events. Place in the lock
order: **a leaf, held alone**. A pass takes its cursor in a transaction of its own and,
while holding it, its handler only inserts rows (notifications, invitations, webhook
deliveries) and locks no domain row; no service that holds a domain row lock ever takes
a cursor (recording an event only inserts a DomainEvent row and locks nothing).
"""

from __future__ import annotations

from django.db.models import QuerySet

from config.events.models import EventCursor
from config.locking import LockRank, lock_helper


@lock_helper(LockRank.EVENT_CURSOR)
def event_cursor_qs_for_update() -> QuerySet[EventCursor]:
    """A consumer's cursor, locked (rows in primary-key order, like every lock helper)."""
    return EventCursor.objects.order_by("pk").select_for_update()
