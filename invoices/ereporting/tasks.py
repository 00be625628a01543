"""Celery tasks of e-reporting: thin, ids only (config/settings/ereporting.py schedules the sweep)."""

from __future__ import annotations

from celery import shared_task

from invoices.einvoicing.errors import PlatformUnavailable
from invoices.ereporting.models import EReportingPeriod
from invoices.ereporting.services import (
    adapter_for_brand,
    ereporting_close_due,
    ereporting_period_submit,
    ereporting_status_refresh,
)


@shared_task(name="ereporting.close_due", bind=True, acks_late=True, max_retries=0)
def ereporting_close_due_task(self) -> int:  # type: ignore[no-untyped-def]
    """Build the closed periods and queue the submission of every built one."""
    period_ids = ereporting_close_due()
    for period_id in period_ids:
        ereporting_submit_task.delay(period_id)
    return len(period_ids)


@shared_task(name="ereporting.submit", bind=True, acks_late=True, max_retries=8, default_retry_delay=300)
def ereporting_submit_task(self, period_id: int) -> str:  # type: ignore[no-untyped-def]
    """Submit a built period, or pull the statuses of a submitted one."""
    period = EReportingPeriod.objects.select_related("brand").get(pk=period_id)
    adapter = adapter_for_brand(brand=period.brand, livemode=period.livemode)
    if adapter is None or period.state not in (EReportingPeriod.State.BUILT, EReportingPeriod.State.SUBMITTED):
        return period.state
    try:
        if period.state == EReportingPeriod.State.SUBMITTED:
            return ereporting_status_refresh(period=period, adapter=adapter).state
        return ereporting_period_submit(period=period, adapter=adapter).state
    except PlatformUnavailable as outage:
        raise self.retry(exc=outage) from outage
