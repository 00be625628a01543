"""Row locks of the quotes, in the one lock order (docs/billing.md "Lock order").

quote (and the quote it revises, in primary-key order) -> quote series; an acceptance
then creates the subscription and its first invoice, whose locks (coupon, customer,
invoice, number sequence) all rank after the quote's.
"""

from __future__ import annotations

from django.db.models import QuerySet

from billing.quotes.models import Quote, QuoteSeries
from config.locking import LockRank, lock_helper


@lock_helper(LockRank.QUOTE)
def quote_qs_for_update() -> QuerySet[Quote]:
    return Quote.objects.order_by("pk").select_for_update(of=("self",))


@lock_helper(LockRank.QUOTE_SERIES)
def quote_series_qs_for_update() -> QuerySet[QuoteSeries]:
    return QuoteSeries.objects.order_by("pk").select_for_update(of=("self",))
