"""The one clock billing code reads.

Real time comes from django.utils.timezone.now (tests move it with time-machine);
a customer attached to a test clock lives at that clock's frozen time instead, as
with Stripe test clocks. Never call datetime.now() in billing code.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.utils import timezone

if TYPE_CHECKING:
    from customers.models import Customer


def now(*, customer: Customer | None = None) -> datetime:
    if customer is not None and customer.test_clock is not None:  # no query when test_clock_id is None
        return customer.test_clock.frozen_time
    return timezone.now()


def system_now() -> datetime:
    """Wall-clock time for bookkeeping that no test clock may move (audit, run timings)."""
    return timezone.now()
