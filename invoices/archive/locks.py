"""Row lock of the archive: its chain head, last in the lock order (docs/billing.md "Lock order")."""

from __future__ import annotations

from django.db.models import QuerySet

from config.locking import LockRank, lock_helper
from invoices.archive.models import ArchiveHead


@lock_helper(LockRank.ARCHIVE_HEAD)
def archive_head_qs_for_update() -> QuerySet[ArchiveHead]:
    return ArchiveHead.objects.order_by("pk").select_for_update(of=("self",))
