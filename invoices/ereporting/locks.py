"""Row lock of e-reporting periods (docs/billing.md "Lock order"): nothing else is locked under it
except the archive's chain head (rank 950) when a submission is recorded."""

from __future__ import annotations

from django.db.models import QuerySet

from config.locking import LockRank, lock_helper
from invoices.ereporting.models import EReportingPeriod


@lock_helper(LockRank.EREPORTING_PERIOD)
def ereporting_period_qs_for_update() -> QuerySet[EReportingPeriod]:
    return EReportingPeriod.objects.order_by("pk").select_for_update(of=("self",))
