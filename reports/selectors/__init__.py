"""Report figures, computed by the database (SQL aggregates and window functions), read-only.

One module per area; this package re-exports their public names, so callers keep
`from reports.selectors import mrr_movements`:

- `common`: SQL helpers (billed statuses, net of a line, month calendar, MRR factors, filters);
- `mrr_source`: where MRR figures come from (the summary table, or its rows computed from
  the invoice lines while it has never been built) and how current they are (`as of`);
- `mrr`: MRR, ARR and movements; `churn`: churn rates, net revenue retention, cohorts;
- `revenue`: revenue recognition, what invoices billed by line kind;
- `receivables`: AR aging, DSO, invoices by status; `payments`: success rates, declines, dunning;
- `operations`: usage per meter (from the usage rollups), plan-change history; `timeline`: the customer timeline;
- `summaries`: the month summaries of `billed`, `invoices-by-status` and `revenue-recognition` (built? as of?).

Nothing in this package writes: the MRR summary is written only by reports/summary.py
(beat task, refresh command), which builds on `common` and `mrr_source`, never the reverse;
the month summaries only by reports/summaries.py.
"""

from reports.selectors.churn import CohortRow, RetentionMonth, cohorts, retention
from reports.selectors.common import BILLED_STATUSES, LINE_NET_SQL, MOVEMENT_KINDS, as_month
from reports.selectors.mrr import MrrMonth, mrr_movements
from reports.selectors.mrr_source import MrrSummaryStatus, mrr_summary_status, next_summary_refresh
from reports.selectors.operations import (
    PLAN_CHANGE_KINDS,
    USAGE_DIGEST,
    USAGE_DIGEST_BEAT_ENTRY,
    USAGE_TOP_CUSTOMERS,
    PlanChangeRow,
    UsageMeterTotal,
    UsageOverview,
    UsageRow,
    plan_change_history,
    usage_by_meter,
    usage_by_meter_live,
    usage_by_meter_page,
    usage_by_meter_stream,
    usage_digest_as_of,
    usage_digest_overview,
    usage_overview,
)
from reports.selectors.payments import (
    DeclineRow,
    DunningRow,
    PaymentRateRow,
    decline_reasons,
    decline_reasons_live,
    dunning_recovery,
    payment_success,
    payment_success_live,
)
from reports.selectors.receivables import (
    AGING_BUCKETS,
    AgingRow,
    DsoRow,
    StatusRow,
    ar_aging,
    ar_aging_live,
    days_sales_outstanding,
    days_sales_outstanding_live,
    invoices_by_status,
    invoices_by_status_live,
    period_end_instant,
)
from reports.selectors.revenue import (
    BilledMonth,
    RecognitionMonth,
    billed_by_kind,
    billed_by_kind_live,
    revenue_recognition,
    revenue_recognition_live,
)
from reports.selectors.summaries import (
    BILLED,
    INVOICE_STATUS,
    PAYMENTS,
    RECEIVABLES,
    RECOGNITION,
    SUMMARIES_BEAT_ENTRY,
    SUMMARY_NAMES,
    SummaryStatus,
    summary_serves,
    summary_status,
)
from reports.selectors.timeline import (
    TIMELINE_SOURCES,
    TimelineEntry,
    TimelineSource,
    customer_timeline,
    timeline_source,
)

__all__ = [
    "BILLED",
    "INVOICE_STATUS",
    "RECOGNITION",
    "SUMMARIES_BEAT_ENTRY",
    "SUMMARY_NAMES",
    "SummaryStatus",
    "billed_by_kind_live",
    "invoices_by_status_live",
    "revenue_recognition_live",
    "summary_serves",
    "summary_status",
    "usage_by_meter_live",
    "PAYMENTS",
    "RECEIVABLES",
    "ar_aging_live",
    "days_sales_outstanding_live",
    "decline_reasons_live",
    "payment_success_live",
    "usage_by_meter_page",
    "usage_by_meter_stream",
    "usage_overview",
    "usage_digest_as_of",
    "usage_digest_overview",
    "USAGE_DIGEST",
    "USAGE_DIGEST_BEAT_ENTRY",
    "UsageMeterTotal",
    "UsageOverview",
    "USAGE_TOP_CUSTOMERS",
    "AGING_BUCKETS",
    "BILLED_STATUSES",
    "LINE_NET_SQL",
    "MOVEMENT_KINDS",
    "PLAN_CHANGE_KINDS",
    "TIMELINE_SOURCES",
    "AgingRow",
    "BilledMonth",
    "CohortRow",
    "DeclineRow",
    "DsoRow",
    "DunningRow",
    "MrrMonth",
    "MrrSummaryStatus",
    "PaymentRateRow",
    "PlanChangeRow",
    "RecognitionMonth",
    "RetentionMonth",
    "StatusRow",
    "TimelineEntry",
    "TimelineSource",
    "UsageRow",
    "ar_aging",
    "as_month",
    "billed_by_kind",
    "cohorts",
    "customer_timeline",
    "days_sales_outstanding",
    "decline_reasons",
    "dunning_recovery",
    "invoices_by_status",
    "mrr_movements",
    "mrr_summary_status",
    "next_summary_refresh",
    "payment_success",
    "period_end_instant",
    "plan_change_history",
    "retention",
    "revenue_recognition",
    "timeline_source",
    "usage_by_meter",
]
