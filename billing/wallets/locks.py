"""Row locks of the prepaid credits, in the one lock order (docs/billing.md "Lock order").

customer (stands for its balance and its wallets) -> invoice -> wallet -> credit grants
(in primary-key order) -> number sequence. The wallet and its grants come after the
invoice because finalization and void lock the invoice first, then consume or return
credits; every other path (grant, void, expiry, top-up) locks the customer first.
"""

from __future__ import annotations

from django.db.models import QuerySet

from billing.wallets.models import CreditGrant, Wallet
from config.locking import LockRank, lock_helper


@lock_helper(LockRank.WALLET)
def wallet_qs_for_update() -> QuerySet[Wallet]:
    return Wallet.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.CREDIT_GRANT)
def credit_grant_qs_for_update() -> QuerySet[CreditGrant]:
    return CreditGrant.objects.order_by("pk").select_for_update(of=("self",))
