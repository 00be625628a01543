"""Proration through the services, case by case, with the amounts worked out by hand.

Every case subscribes a customer at the start of a period, then changes (or cancels)
at `at` and checks what the customer sees: the pending proration items waiting for
the next invoice, the invoice issued at once, and the customer's balance.

Prices (monthly unless said otherwise, EUR cents, VAT 20 % exclusive):
    starter 2900, pro 9900, seat 1000 per unit, addon 500,
    enterprise 3 888 000 and enterprise_plus 7 776 000 (big enough for one second to count),
    pro_yearly 99 000 per year.
The remaining share of a period is (period_end - at) / (period_end - period_start) in
real seconds; each line is rounded once, half away from zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import Coupon, InvoiceItem
from billing.services.changes import subscription_change
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create
from invoices.models import Invoice
from invoices.selectors import customer_balance
from tests.billing.services.conftest import MONTHLY, YEARLY, utc

pytestmark = pytest.mark.django_db

AMOUNTS = {
    "starter": (2900, MONTHLY),
    "pro": (9900, MONTHLY),
    "seat": (1000, MONTHLY),
    "addon": (500, MONTHLY),
    "enterprise": (3_888_000, MONTHLY),
    "enterprise_plus": (7_776_000, MONTHLY),
    "pro_yearly": (99_000, YEARLY),
}


@dataclass(frozen=True)
class Case:
    name: str
    start: datetime
    old: list[tuple[str, int]]
    at: datetime
    new: list[tuple[str, int]] | None = None  # None: cancel immediately with credit
    mode: str = "create_prorations"
    tz: str = "UTC"
    coupon_percent: int | None = None
    pending: list[int] = field(default_factory=list)  # proration items waiting for the next invoice
    invoice: list[int] | None = None  # lines of the invoice issued at once
    invoice_total: int | None = None
    balance: int = 0  # customer credit afterwards


CASES = [
    # April 2024 has 30 days; at the 16th, 15 days = 1/2 is left.
    # starter: 2900 x 1/2 = 1450 credited; pro: 9900 x 1/2 = 4950 charged.
    Case("upgrade mid 30-day month", utc(2024, 4, 1), [("starter", 1)], utc(2024, 4, 16), [("pro", 1)],
         pending=[-1450, 4950]),
    # January 2025 has 31 days; at the 17th, 15/31 is left.
    # pro: 9900 x 15/31 = 4790.32 -> 4790; starter: 2900 x 15/31 = 1403.23 -> 1403.
    Case("downgrade mid 31-day month", utc(2025, 1, 1), [("pro", 1)], utc(2025, 1, 17), [("starter", 1)],
         pending=[-4790, 1403]),
    # February 2024 (leap) has 29 days; at the 15th, 15/29 is left.
    # starter: 2900 x 15/29 = 1500 exactly; pro: 9900 x 15/29 = 5120.69 -> 5121.
    Case("upgrade in February of a leap year", utc(2024, 2, 1), [("starter", 1)], utc(2024, 2, 15), [("pro", 1)],
         pending=[-1500, 5121]),
    # 10 of 29 days left on 20 Feb 2024: 10 seats 10000 x 10/29 = 3448.28 -> 3448; 4 seats 4000 x 10/29 = 1379.31.
    Case("seats down in leap February", utc(2024, 2, 1), [("seat", 10)], utc(2024, 2, 20), [("seat", 4)],
         pending=[-3448, 1379]),
    # 10 of 30 days left on 21 April: 3 seats 3000 / 3 = 1000; 5 seats 5000 / 3 = 1666.67 -> 1667.
    Case("quantity up", utc(2024, 4, 1), [("seat", 3)], utc(2024, 4, 21), [("seat", 5)], pending=[-1000, 1667]),
    # 20 of 30 days left on 11 April: 5000 x 2/3 = 3333.33 -> 3333; 2000 x 2/3 = 1333.33 -> 1333.
    Case("quantity down", utc(2024, 4, 1), [("seat", 5)], utc(2024, 4, 11), [("seat", 2)], pending=[-3333, 1333]),
    # Adding an add-on halfway charges only the add-on: 500 x 1/2 = 250.
    Case("add-on added", utc(2024, 4, 1), [("starter", 1)], utc(2024, 4, 16), [("starter", 1), ("addon", 1)],
         pending=[250]),
    Case("add-on removed", utc(2024, 4, 1), [("starter", 1), ("addon", 1)], utc(2024, 4, 16), [("starter", 1)],
         pending=[-250]),
    # On the first second of the period nothing has been used: full credit, full charge.
    Case("change on the period's first second", utc(2024, 4, 1), [("starter", 1)], utc(2024, 4, 1), [("pro", 1)],
         pending=[-2900, 9900]),
    # On the boundary second (the period's end) nothing is left to prorate.
    Case("change on the boundary second", utc(2024, 4, 1), [("starter", 1)], utc(2024, 5, 1), [("pro", 1)],
         pending=[]),
    # One second of 2 592 000 left: 3 888 000 / 2 592 000 = 1.5 -> 2; 7 776 000 / 2 592 000 = 3.
    Case("one second before period end", utc(2024, 4, 1), [("enterprise", 1)], utc(2024, 4, 30, 23, 59, 59),
         [("enterprise_plus", 1)], pending=[-2, 3]),
    # Paris, March 2024: the period runs from 1 March 00:00 CET (29 Feb 23:00 UTC) to 1 April 00:00 CEST
    # (31 March 22:00 UTC): 743 hours, the clocks having jumped on 31 March. From 16 March 00:00 CET
    # (15 March 23:00 UTC) 383 hours are left:
    # starter 2900 x 383/743 = 1494.89 -> 1495 (a naive 16/31 would give 1497); pro 9900 x 383/743 = 5103.23.
    Case("DST change in Paris inside the period", utc(2024, 2, 29, 23), [("starter", 1)], utc(2024, 3, 15, 23),
         [("pro", 1)], tz="Europe/Paris", pending=[-1495, 5103]),
    # always_invoice: the same upgrade, invoiced at once: 3500 + 20 % VAT = 4200, nothing left pending.
    Case("upgrade, invoice now", utc(2024, 4, 1), [("starter", 1)], utc(2024, 4, 16), [("pro", 1)],
         mode="always_invoice", invoice=[-1450, 4950], invoice_total=4200),
    # none: the items change, nothing is billed for the rest of the period.
    Case("upgrade, no proration", utc(2024, 4, 1), [("starter", 1)], utc(2024, 4, 16), [("pro", 1)], mode="none"),
    # Monthly -> yearly on 16 April: half the month credited (-1450), and the year from 16 April 2024
    # invoiced in full at once (99 000): 97 550 + 19 510 VAT = 117 060.
    Case("monthly to yearly", utc(2024, 4, 1), [("starter", 1)], utc(2024, 4, 16), [("pro_yearly", 1)],
         invoice=[99_000, -1450], invoice_total=117_060),
    # Same without proration: only the new year is invoiced.
    Case("monthly to yearly, no proration", utc(2024, 4, 1), [("starter", 1)], utc(2024, 4, 16),
         [("pro_yearly", 1)], mode="none", invoice=[99_000], invoice_total=118_800),
    # Yearly -> monthly halfway through 2024 (366 days, 183 left on 2 July): -49 500 credited, the month
    # from 2 July invoiced (9900). The invoice's total is negative, -39 600 - 7920 VAT = -47 520, and
    # becomes customer credit.
    Case("yearly to monthly, credit exceeds charge", utc(2024, 1, 1), [("pro_yearly", 1)], utc(2024, 7, 2),
         [("pro", 1)], invoice=[9900, -49_500], invoice_total=-47_520, balance=47_520),
    # 20 % coupon: the period was billed at 2320 (starter) and pro costs 7920 after the discount;
    # half of each: -1160 and +3960.
    Case("percent coupon with proration", utc(2024, 4, 1), [("starter", 1)], utc(2024, 4, 16), [("pro", 1)],
         coupon_percent=20, pending=[-1160, 3960]),
    # Cancel on 21 April with credit: 10 of 30 days unused, 9900 / 3 = 3300 to the balance.
    Case("cancel immediately with credit", utc(2024, 4, 1), [("pro", 1)], utc(2024, 4, 21), None, balance=3300),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_proration_case(case: Case, make_customer, make_price):
    customer = make_customer(timezone=case.tz)
    prices = {name: make_price(amount, cycle=cycle, nickname=name) for name, (amount, cycle) in AMOUNTS.items()}
    coupon = None
    if case.coupon_percent:
        coupon = Coupon.objects.create(name="Spring", percent_off=Decimal(case.coupon_percent), duration="forever")
    subscription = subscription_create(
        customer=customer,
        items=[ItemSpec(prices[name], quantity) for name, quantity in case.old],
        at=case.start,
        trial_days=0,
        coupon=coupon,
    )

    if case.new is None:
        subscription_cancel(subscription=subscription, at=case.at, at_period_end=False, prorate=True)
    else:
        subscription_change(
            subscription=subscription,
            items=[ItemSpec(prices[name], quantity) for name, quantity in case.new],
            at=case.at,
            proration=case.mode,
        )

    pending = InvoiceItem.objects.filter(subscription=subscription, invoice__isnull=True, proration=True)
    assert list(pending.order_by("pk").values_list("amount", flat=True)) == case.pending
    immediate = Invoice.objects.filter(subscription=subscription, billing_reason="subscription_update").first()
    if case.invoice is None:
        assert immediate is None
    else:
        assert list(immediate.lines.order_by("position").values_list("amount", flat=True)) == case.invoice
        assert immediate.total == case.invoice_total
        assert immediate.number
    assert customer_balance(customer_id=customer.pk, currency="EUR") == case.balance


def test_a_cycle_change_restarts_the_subscription_at_the_change(make_customer, make_price):
    customer = make_customer()
    monthly, yearly = make_price(2900), make_price(99_000, cycle=YEARLY)
    subscription = subscription_create(customer=customer, items=[ItemSpec(monthly)], at=utc(2024, 4, 1), trial_days=0)

    subscription_change(subscription=subscription, items=[ItemSpec(yearly)], at=utc(2024, 4, 16, 9, 30))

    subscription.refresh_from_db()
    assert subscription.billing_cycle_anchor == utc(2024, 4, 16, 9, 30)
    assert (subscription.current_period_start, subscription.current_period_end) == (
        utc(2024, 4, 16, 9, 30),
        utc(2025, 4, 16, 9, 30),
    )
    assert subscription.cycle["unit"] == "year"


@pytest.mark.django_db
def test_proration_lines_are_worded_in_the_customers_language(customer_factory, price_factory, tax_rate):
    french = customer_factory(preferred_language="fr")
    english = customer_factory(preferred_language="en")
    basic = price_factory(unit_amount=Decimal(1000), product__name="Basic")
    pro = price_factory(unit_amount=Decimal(3000), product__name="Pro")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for customer in (french, english):
        subscription = subscription_create(customer=customer, items=[ItemSpec(price=basic)], at=start)
        subscription_change(subscription=subscription, items=[ItemSpec(price=pro)], at=start + timedelta(days=10))

    worded = {
        language: sorted(
            InvoiceItem.objects.filter(customer__preferred_language=language).values_list("description", flat=True)
        )
        for language in ("fr", "en")
    }

    assert worded["en"] == ["Remaining time on Pro", "Unused time on Basic"]
    assert worded["fr"] == ["Temps non utilisé sur Basic", "Temps restant sur Pro"]
