"""Row locks of the operations module, ranked in the one lock order (config.locking)."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from config.locking import LockRank, lock_helper
from config.ops.models import Handoff


@lock_helper(LockRank.HANDOFF)
def handoffs_claim_qs(queryset: QuerySet[Handoff]) -> QuerySet[Handoff]:
    """Due hand-offs, locked with SKIP LOCKED where the database can (never waits: two
    sweepers claim different rows); elsewhere unchanged (SQLite serializes writers)."""
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True)
    return queryset
