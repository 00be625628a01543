"""The invoices list's chart: invoiced totals per month over a year, by currency (pure SVG data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_compact_currency
from django.conf import settings
from django.db.models import Max, QuerySet, Sum
from django.db.models.functions import TruncMonth

from config.console import (
    babel_locale,
    format_money,
)
from config.money import CurrencyError, Money
from invoices.models import (
    Invoice,
)

CHART_MONTHS = 12


CHART_BAR_WIDTH = 44


CHART_GAP = 14


CHART_PLOT_HEIGHT = 140


CHART_TOP = 18  # room for the value above the tallest bar


CHART_BOTTOM = 22  # room for the month labels


@dataclass(frozen=True, slots=True)
class ChartBar:
    month: datetime
    key: str  # "2026-03", the month in the chart's time zone
    label: str
    amount: int
    money: str
    compact: str
    x: int
    center: int
    y: int
    height: int
    label_y: int


@dataclass(frozen=True, slots=True)
class ChartSeries:
    currency: str
    bars: tuple[ChartBar, ...]
    total: str
    width: int
    height: int
    baseline: int
    bar_width: int = CHART_BAR_WIDTH


def _month_start(moment: datetime, tz: ZoneInfo) -> datetime:
    local = moment.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _add_months(month: datetime, count: int) -> datetime:
    index = month.year * 12 + month.month - 1 + count
    return month.replace(year=index // 12, month=index % 12 + 1)


def invoice_month_totals(queryset: QuerySet[Invoice], *, now: datetime) -> list[ChartSeries]:
    """Invoiced totals per month (finalized, not void) of `queryset` over 12 months, one
    series per currency, largest first; two queries."""
    tz = ZoneInfo(settings.TARIF_DEFAULT_TIMEZONE)
    issued = queryset.exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID]).filter(finalized_at__isnull=False)
    # The chart ends with the current month, so a quiet recent month shows as a gap; a list
    # filtered to an older time (e.g. by the date hierarchy) ends with its latest invoice.
    end_month = _month_start(now, tz)
    first_month = _add_months(end_month, -(CHART_MONTHS - 1))
    latest = issued.order_by().aggregate(latest=Max("finalized_at"))["latest"]
    if latest is not None and latest < first_month:
        end_month = _month_start(latest, tz)
        first_month = _add_months(end_month, -(CHART_MONTHS - 1))
    rows = (
        issued.filter(finalized_at__gte=first_month, finalized_at__lt=_add_months(end_month, 1))
        .annotate(month=TruncMonth("finalized_at", tzinfo=tz))
        .order_by()
        .values("currency", "month")
        .annotate(amount=Sum("total"))
    )
    by_currency: dict[str, dict[tuple[int, int], int]] = {}
    for row in rows:
        month = row["month"].astimezone(tz)
        by_currency.setdefault(row["currency"], {})[(month.year, month.month)] = int(row["amount"] or 0)
    months = [_add_months(first_month, offset) for offset in range(CHART_MONTHS)]
    locale = babel_locale()
    series = []
    for currency in sorted(by_currency, key=lambda code: -sum(by_currency[code].values())):
        amounts = [by_currency[currency].get((month.year, month.month), 0) for month in months]
        tallest = max(max(amounts), 1)
        bars = []
        for index, (month, amount) in enumerate(zip(months, amounts, strict=True)):
            height = round(CHART_PLOT_HEIGHT * max(amount, 0) / tallest)
            y = CHART_TOP + CHART_PLOT_HEIGHT - height
            bars.append(
                ChartBar(
                    month=month,
                    key=f"{month.year:04d}-{month.month:02d}",
                    label=format_date(month.date(), "MMM yy", locale=locale),
                    amount=amount,
                    money=format_money(amount, currency),
                    compact=_compact_money(amount, currency, locale) if amount else "",
                    x=index * (CHART_BAR_WIDTH + CHART_GAP) + CHART_GAP // 2,
                    center=index * (CHART_BAR_WIDTH + CHART_GAP) + CHART_GAP // 2 + CHART_BAR_WIDTH // 2,
                    y=y,
                    height=height,
                    label_y=y - 4,
                )
            )
        series.append(
            ChartSeries(
                currency=currency,
                bars=tuple(bars),
                total=format_money(sum(amounts), currency),
                width=CHART_MONTHS * (CHART_BAR_WIDTH + CHART_GAP),
                height=CHART_TOP + CHART_PLOT_HEIGHT + CHART_BOTTOM,
                baseline=CHART_TOP + CHART_PLOT_HEIGHT,
            )
        )
    return series


def _compact_money(amount: int, currency: str, locale: Any) -> str:
    try:
        return format_compact_currency(Money(amount, currency).decimal, currency, locale=locale, fraction_digits=1)
    except (CurrencyError, ValueError):
        return str(amount)
