"""Row locks of e-invoicing, in the one lock order (docs/billing.md "Lock order").

Both rank after every billing and invoicing lock: they are taken in their own short
transactions, never with a document's locks, and never while the PA is being called.
"""

from __future__ import annotations

from django.db.models import QuerySet

from config.locking import LockRank, lock_helper
from invoices.einvoicing.models import PlatformAccount, Transmission


@lock_helper(LockRank.EINVOICING_ACCOUNT)
def platform_account_qs_for_update() -> QuerySet[PlatformAccount]:
    return PlatformAccount.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.EINVOICING_TRANSMISSION)
def transmission_qs_for_update() -> QuerySet[Transmission]:
    return Transmission.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.EINVOICING_TRANSMISSION)
def transmission_claim_qs() -> QuerySet[Transmission]:
    """Queued transmissions a sweeper may take: rows another sweeper holds are skipped."""
    return Transmission.objects.order_by("pk").select_for_update(of=("self",), skip_locked=True)
