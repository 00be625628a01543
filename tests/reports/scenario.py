"""A hand-built billing history whose report figures are worked out by hand in the tests.

Four customers, monthly prices (Basic 29 €, Pro 99 €) and a yearly one (1 200 €),
invoiced at each period start (months cut at midnight in Paris). The report period
is January-March 2026; December 2025 is the month before it.

| customer | Dec   | Jan   | Feb                   | Mar          |
|----------|-------|-------|-----------------------|--------------|
| Alice    | Basic | Basic | Pro (expansion +70)   | Pro          |
| Bruno    | Pro   | Pro   | Basic (contraction -70) | — (churn -29) |
| Chloé    |       | yearly from 15 Jan: 100/month (new)  |  | |
| David    | (Basic in Oct 2025 only) | | Basic with 50 % off: 14.50 (reactivation) | Basic |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine

from billing.models import Price
from invoices.calculations import DiscountInput
from invoices.models import Invoice
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftDiscount, DraftInvoice, DraftLine
from reports.filters import ReportFilters
from reports.selectors import mrr_summary_status
from reports.summary import mrr_summary_refresh

PARIS = ZoneInfo("Europe/Paris")
PERIOD = ReportFilters(start=date(2026, 1, 1), end=date(2026, 3, 1))


def paris(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=PARIS)


def bill(customer, price: Price, start: datetime, end: datetime, *, percent_off: int | None = None) -> Invoice:
    """Issue the invoice of one service period, at its start."""
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency=price.currency,
        billing_reason="subscription_cycle",
        lines=(
            DraftLine(
                kind="subscription",
                description=price.nickname,
                amount=int(price.unit_amount),
                unit_amount=price.unit_amount,
                price_id=price.pk,
                period_start=start,
                period_end=end,
            ),
        ),
        discounts=(DraftDiscount(discount=DiscountInput(percent_off=percent_off), label="promo"),)
        if percent_off
        else (),
        period_start=start,
        period_end=end,
    )
    return invoice_finalize(invoice=invoice_create(draft=draft, at=start, customer=customer), at=start)


@dataclass
class Scenario:
    alice: object
    bruno: object
    chloe: object
    david: object
    basic: Price
    pro: Price
    yearly: Price


def build_scenario(customer_factory, price_factory) -> Scenario:
    basic = price_factory(nickname="Basic", unit_amount=2900)
    pro = price_factory(nickname="Pro", unit_amount=9900)
    yearly_cycle = {"kind": "interval", "unit": "year", "count": 1}
    yearly = price_factory(nickname="Yearly", unit_amount=120000, cycle=yearly_cycle)
    alice, bruno, chloe, david = (customer_factory(legal_name=name) for name in ("Alice", "Bruno", "Chloé", "David"))
    months = [paris(2025, 12), paris(2026, 1), paris(2026, 2), paris(2026, 3), paris(2026, 4)]
    periods = []  # (start, end, customer, price, percent_off)
    for index, plan in enumerate([basic, basic, pro, pro]):
        periods.append((months[index], months[index + 1], alice, plan, None))
    for index, plan in enumerate([pro, pro, basic]):
        periods.append((months[index], months[index + 1], bruno, plan, None))
    periods.append((paris(2026, 1, 15), paris(2027, 1, 15), chloe, yearly, None))
    periods.append((paris(2025, 10), paris(2025, 11), david, basic, None))
    periods.append((months[2], months[3], david, basic, 50))
    periods.append((months[3], months[4], david, basic, 50))
    # Issued in date order: a number series is chronological (docs/billing.md).
    for start, end, customer, price, percent_off in sorted(periods, key=lambda period: period[0]):
        bill(customer, price, start, end, percent_off=percent_off)
    return Scenario(alice, bruno, chloe, david, basic, pro, yearly)


# -- The MRR summary's build and refresh, a few minutes apart on the clock ---------------------


def summary_build() -> None:
    """Build the MRR summary a minute after its current "as of" (after the scenario's invoices)."""
    with time_machine.travel(mrr_summary_status().as_of() + timedelta(minutes=1), tick=False):
        mrr_summary_refresh(full=True)


def summary_refresh(minutes: int) -> int:
    """Refresh the MRR summary `minutes` after its last refresh; the customers recomputed."""
    with time_machine.travel(mrr_summary_status().refreshed_at + timedelta(minutes=minutes), tick=False):
        return mrr_summary_refresh()
