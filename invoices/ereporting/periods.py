"""How long an e-reporting period is, by VAT regime and kind (docs/ereporting.md, "Calendar").

Décret n° 2022-1299 (art. 242 nonies M and following of annex II to the CGI), as amended:

| regime                    | transaction data        | payment data |
|---------------------------|-------------------------|--------------|
| normal, monthly returns   | per decade (1-10, 11-20, 21-end) | monthly |
| normal, quarterly returns | monthly                 | monthly      |
| simplified                | monthly                 | monthly      |
| franchise en base         | every two months        | every two months |

A leaf of pure date arithmetic: no database.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from invoices.ereporting.models import EReportingPeriod, Regime

TRANSACTIONS = EReportingPeriod.Kind.TRANSACTIONS
PAYMENTS = EReportingPeriod.Kind.PAYMENTS


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def period_containing(*, regime: str, kind: str, day: date) -> tuple[date, date]:
    """(first day, last day) of the period of `regime` and `kind` that holds `day`."""
    if regime == Regime.NORMAL_MONTHLY and kind == TRANSACTIONS:
        if day.day <= 10:
            return day.replace(day=1), day.replace(day=10)
        if day.day <= 20:
            return day.replace(day=11), day.replace(day=20)
        return day.replace(day=21), _month_end(day)
    if regime == Regime.FRANCHISE:
        first_month = day.month - (day.month - 1) % 2  # January-February, March-April, ...
        start = day.replace(month=first_month, day=1)
        return start, _month_end(start.replace(month=first_month + 1))
    return day.replace(day=1), _month_end(day)


def periods_closed_between(*, regime: str, kind: str, since: date, today: date) -> list[tuple[date, date]]:
    """The periods that start on or after `since` and ended before `today`, oldest first."""
    periods: list[tuple[date, date]] = []
    start, end = period_containing(regime=regime, kind=kind, day=since)
    if start < since:
        start, end = period_containing(regime=regime, kind=kind, day=end + timedelta(days=1))
    while end < today:
        periods.append((start, end))
        start, end = period_containing(regime=regime, kind=kind, day=end + timedelta(days=1))
    return periods
