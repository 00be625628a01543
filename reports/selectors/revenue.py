"""Revenue recognition (invoiced, recognized, deferred) and what invoices billed, by line kind."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from reports.filters import ReportFilters, months_between
from reports.selectors.common import LINE_NET_SQL, as_month, fetch, invoice_where, months_cte
from reports.selectors.summaries import BILLED, RECOGNITION, TABLES, month_index, summary_serves, summary_where


@dataclass(frozen=True, slots=True)
class RecognitionMonth:
    month: date
    currency: str
    invoiced: int  # subscription lines (billed in advance) of invoices finalized this month, excluding tax
    recognized: int
    deferred: int  # at the end of the month: invoiced so far minus recognized so far


def revenue_recognition(*, filters: ReportFilters) -> list[RecognitionMonth]:
    """Recognized and deferred revenue of plans billed in advance, month by month.

    A subscription line whose service period contains n month ends is recognized
    straight-line over those n months, the rounding remainder in the last one, so
    the months add up exactly to the line; a line shorter than a month (no month end
    inside) is recognized in the month it starts. Deferred revenue at a month's end is
    what was invoiced by then and not yet recognized.

    Read from the month summary when it is built (reports/summaries.py), else live.
    """
    if summary_serves(name=RECOGNITION, filters=filters):
        return _recognition_from_summary(filters)
    return revenue_recognition_live(filters=filters)


def revenue_recognition_live(*, filters: ReportFilters) -> list[RecognitionMonth]:
    """`revenue_recognition` computed from the invoice lines at the read (the summary's reference)."""
    where, where_params = invoice_where(filters)
    bounds = fetch(
        f"""
        SELECT MIN(l.period_start), MAX(l.period_end), MIN(i.finalized_at), MAX(i.finalized_at)
        FROM invoices_invoiceline l JOIN invoices_invoice i ON i.id = l.invoice_id
        WHERE l.kind = 'subscription' AND l.period_start IS NOT NULL AND {where}
        """,
        where_params,
    )[0]
    window = months_between(filters.start, filters.end)
    if bounds[0] is None:
        return []
    earliest, latest = (as_month(value) for value in (min(bounds[0], bounds[2]), max(bounds[1], bounds[3])))
    calendar = months_between(min(earliest, filters.start), max(latest, filters.end))
    months_sql, months_params = months_cte("months", calendar)
    net = LINE_NET_SQL
    rows = fetch(
        f"""
        WITH {months_sql},
        lines AS (
            SELECT l.id AS line_id, i.currency AS currency, {net} AS net, l.period_start AS period_start,
                   l.period_end AS period_end, i.finalized_at AS finalized_at
            FROM invoices_invoiceline l JOIN invoices_invoice i ON i.id = l.invoice_id
            WHERE l.kind = 'subscription' AND l.period_start IS NOT NULL AND {where}
        ),
        spread AS (
            SELECT x.currency AS currency, m.idx AS idx, x.net AS net,
                   COUNT(*) OVER (PARTITION BY x.line_id) AS n,
                   ROW_NUMBER() OVER (PARTITION BY x.line_id ORDER BY m.idx) AS k
            FROM lines x JOIN months m ON x.period_start < m.month_end AND x.period_end >= m.month_end
        ),
        short AS (
            SELECT x.currency AS currency, m.idx AS idx, x.net AS net
            FROM lines x JOIN months m ON x.period_start >= m.month_start AND x.period_start < m.month_end
            WHERE x.period_end < m.month_end
        )
        SELECT currency, idx, 'recognized',
               SUM(net / n + CASE WHEN k = n THEN net - (net / n) * n ELSE 0 END)
        FROM spread GROUP BY currency, idx
        UNION ALL
        SELECT currency, idx, 'recognized', SUM(net) FROM short GROUP BY currency, idx
        UNION ALL
        SELECT x.currency, m.idx, 'invoiced', SUM(x.net)
        FROM lines x JOIN months m ON x.finalized_at >= m.month_start AND x.finalized_at < m.month_end
        GROUP BY x.currency, m.idx
        """,
        [*months_params, *where_params],
    )
    sums: dict[str, dict[tuple[int, str], int]] = defaultdict(lambda: defaultdict(int))
    for currency, idx, kind, amount in rows:
        sums[currency][(int(idx), kind)] += int(amount or 0)
    return _recognition_months(sums, calendar=calendar, window=window)


def _recognition_from_summary(filters: ReportFilters) -> list[RecognitionMonth]:
    where, params = summary_where(filters, price=True)
    rows = fetch(
        f"SELECT currency, month, SUM(invoiced), SUM(recognized) FROM {TABLES[RECOGNITION]} "
        f"WHERE {where} GROUP BY currency, month",
        params,
    )
    if not rows:
        return []
    window = months_between(filters.start, filters.end)
    first = min(min(int(month) for _c, month, _i, _r in rows), month_index(window[0]))
    last = max(max(int(month) for _c, month, _i, _r in rows), month_index(window[-1]))
    calendar = [date(index // 12, index % 12 + 1, 1) for index in range(first, last + 1)]
    sums: dict[str, dict[tuple[int, str], int]] = defaultdict(lambda: defaultdict(int))
    for currency, month, invoiced, recognized in rows:
        sums[currency][(int(month) - first, "invoiced")] += int(invoiced or 0)
        sums[currency][(int(month) - first, "recognized")] += int(recognized or 0)
    return _recognition_months(sums, calendar=calendar, window=window)


def _recognition_months(
    sums: dict[str, dict[tuple[int, str], int]], *, calendar: list[date], window: list[date]
) -> list[RecognitionMonth]:
    """Per currency, the window's months with the deferred revenue summed from the calendar's start."""
    first_window_index = calendar.index(window[0])
    result = []
    for currency in sorted(sums):
        invoiced_so_far = recognized_so_far = 0
        for idx, month in enumerate(calendar):
            invoiced = sums[currency][(idx, "invoiced")]
            recognized = sums[currency][(idx, "recognized")]
            invoiced_so_far += invoiced
            recognized_so_far += recognized
            if first_window_index <= idx < first_window_index + len(window):
                result.append(
                    RecognitionMonth(
                        month=month,
                        currency=currency,
                        invoiced=invoiced,
                        recognized=recognized,
                        deferred=invoiced_so_far - recognized_so_far,
                    )
                )
    return result


@dataclass(frozen=True, slots=True)
class BilledMonth:
    """Invoice totals of a month split by what they bill: the figures reconcile to the invoices."""

    month: date
    currency: str
    subscription: int
    usage: int
    proration: int
    one_off: int
    tax: int
    total: int  # sum of the invoices' totals

    @property
    def excluding_tax(self) -> int:
        return self.subscription + self.usage + self.proration + self.one_off


def billed_by_kind(*, filters: ReportFilters) -> list[BilledMonth]:
    """What issued invoices billed per month of finalization, by line kind, and their totals
    (from the month summary when it is built, else live)."""
    if summary_serves(name=BILLED, filters=filters):
        return _billed_from_summary(filters)
    return billed_by_kind_live(filters=filters)


def _billed_from_summary(filters: ReportFilters) -> list[BilledMonth]:
    months = months_between(filters.start, filters.end)
    first = month_index(months[0])
    where, params = summary_where(filters)
    rows = fetch(
        f"SELECT currency, month, kind, SUM(net), SUM(tax) FROM {TABLES[BILLED]} "
        f"WHERE {where} AND month BETWEEN %s AND %s GROUP BY currency, month, kind",
        [*params, first, month_index(months[-1])],
    )
    return _billed_months(
        [(currency, int(month) - first, kind, net, tax) for currency, month, kind, net, tax in rows], months
    )


def billed_by_kind_live(*, filters: ReportFilters) -> list[BilledMonth]:
    """`billed_by_kind` computed from the invoices at the read (the summary's reference)."""
    months = months_between(filters.start, filters.end)
    months_sql, months_params = months_cte("months", months)
    where, where_params = invoice_where(filters, line=None)
    rows = fetch(
        f"""
        WITH {months_sql}
        SELECT i.currency, m.idx, l.kind, SUM({LINE_NET_SQL}), SUM(l.tax_amount)
        FROM invoices_invoiceline l
        JOIN invoices_invoice i ON i.id = l.invoice_id
        JOIN months m ON i.finalized_at >= m.month_start AND i.finalized_at < m.month_end
        WHERE {where}
        GROUP BY i.currency, m.idx, l.kind
        UNION ALL
        SELECT i.currency, m.idx, 'invoice_total', SUM(i.total), 0
        FROM invoices_invoice i
        JOIN months m ON i.finalized_at >= m.month_start AND i.finalized_at < m.month_end
        WHERE {where}
        GROUP BY i.currency, m.idx
        """,
        [*months_params, *where_params, *where_params],
    )
    return _billed_months(rows, months)


def _billed_months(rows: list[tuple], months: list[date]) -> list[BilledMonth]:
    sums: dict[str, dict[tuple[int, str], int]] = defaultdict(lambda: defaultdict(int))
    for currency, idx, kind, amount, tax in rows:
        sums[currency][(int(idx), kind)] += int(amount or 0)
        sums[currency][(int(idx), "tax")] += int(tax or 0)
    return [
        BilledMonth(
            month=month,
            currency=currency,
            subscription=sums[currency][(idx, "subscription")],
            usage=sums[currency][(idx, "usage")],
            proration=sums[currency][(idx, "proration")],
            one_off=sums[currency][(idx, "one_off")],
            tax=sums[currency][(idx, "tax")],
            total=sums[currency][(idx, "invoice_total")],
        )
        for currency in sorted(sums)
        for idx, month in enumerate(months)
    ]
