"""Row locks of the reports app, ranked in the one lock order (config.locking)."""

from __future__ import annotations

from django.db.models import QuerySet

from config.locking import LockRank, lock_helper
from reports.models import MrrSummaryState, SummaryState


@lock_helper(LockRank.MRR_SUMMARY)
def mrr_summary_state_qs_for_update() -> QuerySet[MrrSummaryState]:
    """The summary's one state row: two refreshes take turns."""
    return MrrSummaryState.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.REPORT_SUMMARY)
def summary_state_qs_for_update() -> QuerySet[SummaryState]:
    """One month summary's state row: two refreshes of the same summary take turns."""
    return SummaryState.objects.order_by("pk").select_for_update(of=("self",))
