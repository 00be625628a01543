"""The month summaries of the `billed`, `invoices-by-status` and `revenue-recognition`
reports (and, issue 20 item 7, `receivables` for AR aging and DSO, `payments` for the
payments and declines reports), read side: whether a summary is built (and so read, as of its last refresh) and
what it holds for the central filters.

Each summary holds one row per brand, mode, currency, customer country and month (and
line kind, status or price); reports/summaries.py writes them (beat task and command),
reports only read. A filter the grain does not carry (one customer; the plan filter of
the status report) and a summary never built are computed live from the invoices,
the reference the summaries are tested equal to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.conf import settings

from config import clock
from reports.filters import ReportFilters
from reports.models import SummaryState
from reports.selectors.common import month_number

BILLED = "billed"
INVOICE_STATUS = "invoices-by-status"
RECOGNITION = "revenue-recognition"
RECEIVABLES = "receivables"  # AR aging and DSO
PAYMENTS = "payments"  # payments and declines
SUMMARY_NAMES = (BILLED, INVOICE_STATUS, RECOGNITION, RECEIVABLES, PAYMENTS)
TABLES = {
    BILLED: "reports_billedmonthsummary",
    INVOICE_STATUS: "reports_invoicestatussummary",
    RECOGNITION: "reports_recognitionsummary",
    RECEIVABLES: "reports_receivablessummary",
    PAYMENTS: "reports_paymentsummary",
}
# Summaries whose latest month is a snapshot taken at the refresh (what is owed depends on
# when it is looked at): every refresh recomputes that month, changes or not.
AT_REFRESH = frozenset({RECEIVABLES})
# The beat entry that refreshes them (config/settings/celery.py).
SUMMARIES_BEAT_ENTRY = "reports-refresh-summaries"


@dataclass(frozen=True, slots=True)
class SummaryStatus:
    """`built`: the table holds every month, cut in the current reporting time zone, with
    every invoice change committed before `refreshed_at` and none after."""

    name: str
    built: bool
    refreshed_at: datetime | None

    def as_of(self, *, now: datetime | None = None) -> datetime:
        if self.built and self.refreshed_at is not None:
            return self.refreshed_at
        return now or clock.system_now()


def summary_status(*, name: str) -> SummaryStatus:
    """A summary's state, read as it is (never created or refreshed by a read)."""
    state = SummaryState.objects.filter(name=name).values("refreshed_at", "timezone").first()
    if state is None:
        return SummaryStatus(name=name, built=False, refreshed_at=None)
    built = state["refreshed_at"] is not None and state["timezone"] == settings.TARIF_REPORTS_TIMEZONE
    return SummaryStatus(name=name, built=built, refreshed_at=state["refreshed_at"])


def summary_serves(*, name: str, filters: ReportFilters) -> bool:
    """Whether the report reads its summary for these filters (else it computes live)."""
    if filters.customer:
        return False  # one customer's invoices: a narrow live query, and not in the grain
    if name == INVOICE_STATUS and filters.plan:
        return False  # an invoice bills several prices: not additive per price
    if name in (RECEIVABLES, PAYMENTS) and filters.plan:
        return False  # the same: an invoice (and its payments) bills several prices
    return summary_status(name=name).built


def month_index(month: date) -> int:
    return month_number(month.year, month.month)


def summary_where(filters: ReportFilters, *, price: bool = False) -> tuple[str, list[Any]]:
    """The central filters on a summary's grain (`price`: the plan filter applies)."""
    clauses: list[str] = ["livemode = %s"]
    params: list[Any] = [filters.livemode]
    for column, value in (("brand_id", filters.brand), ("currency", filters.currency), ("country", filters.country)):
        if value:
            clauses.append(f"{column} = %s")
            params.append(value)
    if price and filters.plan:
        clauses.append("price_id = %s")
        params.append(filters.plan)
    return " AND ".join(clauses), params
