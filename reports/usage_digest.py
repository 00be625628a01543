"""The usage report's digest (issue 20 item 7): its page for the preset periods, as of the last
refresh.

The page shows per meter totals, the customers with usage and each meter's top customers
(reports/selectors/operations.py `usage_overview`). At a million customers that is an aggregate
over every customer-month of the period, seconds at each read, and no grain makes a top-N or a
distinct count over any range of months additive. So the beat task `reports.refresh_usage_digest`
computes the page for the periods finance opens — the last twelve months (the page's default),
this month and last month, without filters, in both modes — and stores its rows
(reports.UsageDigestRow). The page reads them and says as of when; any other period or filter is
computed at the read (as current as the events). The files and the API list every customer from
the rollups at the request, never from the digest.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from config import clock
from reports.filters import ReportFilters, add_months, default_filters
from reports.locks import summary_state_qs_for_update
from reports.models import SummaryState, UsageDigestRow
from reports.selectors.operations import USAGE_DIGEST, usage_overview

__all__ = ["usage_digest_periods", "usage_digest_refresh"]


def usage_digest_periods() -> list[ReportFilters]:
    """The preset periods (in live mode; the refresh does both): the default twelve months,
    this month and last month."""
    default = default_filters()
    this_month = default.end
    last_month = add_months(this_month, -1)
    return [
        default,
        ReportFilters(start=this_month, end=this_month),
        ReportFilters(start=last_month, end=last_month),
    ]


def usage_digest_refresh() -> int:
    """Compute the preset periods again in both modes and replace the digest; returns the rows
    written. One transaction: the page reads the old digest until the new one commits."""
    with transaction.atomic():
        SummaryState.objects.get_or_create(name=USAGE_DIGEST)
        state = summary_state_qs_for_update().get(name=USAGE_DIGEST)
        # Taken before the reads: usage committed during the refresh only makes the figures
        # newer than claimed.
        started = clock.system_now()
        rows: list[UsageDigestRow] = []
        for period in usage_digest_periods():
            for livemode in (True, False):
                filters = ReportFilters(start=period.start, end=period.end, livemode=livemode)
                overview = usage_overview(filters=filters)
                common = {"livemode": livemode, "start": filters.start, "end": filters.end}
                rows.append(UsageDigestRow(**common, meter_id=None, rank=-1, customers=overview.customers, events=0))
                rows += [
                    UsageDigestRow(
                        **common,
                        meter_id=meter.meter_id,
                        rank=0,
                        customers=meter.customers,
                        events=meter.events,
                        total=meter.total,
                        peak=meter.peak,
                    )
                    for meter in overview.meters
                ]
                ranks: dict[int, int] = {}
                for row in overview.top:
                    ranks[row.meter_id] = ranks.get(row.meter_id, 0) + 1
                    rows.append(
                        UsageDigestRow(
                            **common,
                            meter_id=row.meter_id,
                            rank=ranks[row.meter_id],
                            customer_id=row.customer_id,
                            events=row.events,
                            total=row.total,
                            peak=row.peak,
                        )
                    )
        UsageDigestRow.objects.all().delete()
        UsageDigestRow.objects.bulk_create(rows, batch_size=1000)
        state.refreshed_at = started
        state.timezone = settings.TARIF_REPORTS_TIMEZONE
        state.save(update_fields=["refreshed_at", "timezone"])
        return len(rows)
