"""Hand-worked cases for issue 16 item 14 (import from Stripe): a Stripe subscription, as Stripe's
API shows it, is imported through the real importer and services; Tarif's billing run on a test
clock must then bill the next renewal on the date and for the amount Stripe's upcoming invoice
would show (before tax: Tarif computes tax itself, Stripe Tax is not imported).

Each case gives the Stripe objects and the arithmetic by hand. Stripe's period rule
("Billing cycle" in Stripe's docs, https://docs.stripe.com/billing/subscriptions/billing-cycle):
boundaries are the anchor plus whole intervals, and an anchor on the 31st bills on the last day
of shorter months.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing.models import StripeImportRun, Subscription
from billing.services import stripe_import as importer
from billing.services.test_clocks import test_clock_advance, test_clock_create
from invoices.models import Invoice
from tests.factories import BrandFactory, TaxRateFactory

pytestmark = pytest.mark.django_db


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


@dataclass(frozen=True)
class Case:
    name: str
    price: dict[str, Any]
    quantity: int
    anchor: str
    period: tuple[str, str]
    expected_date: str
    expected_subtotal: int
    expected_discount: int = 0
    coupon: dict[str, Any] | None = None
    discount_start: str | None = None
    trial: tuple[str, str] | None = None
    expected_next_end: str | None = None
    source: str = "hand-worked"
    extra: dict[str, Any] = field(default_factory=dict)


def monthly(amount: int, count: int = 1, interval: str = "month") -> dict[str, Any]:
    return {"billing_scheme": "per_unit", "unit_amount": amount, "unit_amount_decimal": str(amount),
            "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"}}  # fmt: skip


def tiered(mode: str) -> dict[str, Any]:
    return {"billing_scheme": "tiered", "tiers_mode": mode, "unit_amount": None,
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
            "tiers": [{"up_to": 5, "unit_amount": 1000, "flat_amount": None},
                      {"up_to": None, "unit_amount": 800, "flat_amount": 500}]}  # fmt: skip


CASES = [
    # 3 x 20.00 monthly, anchor 15 Jan: current period 15 Feb - 15 Mar, renewal 15 Mar = 3 x 2000 = 6000.
    Case("flat monthly x3", monthly(2000), 3, "2026-01-15", ("2026-02-15", "2026-03-15"), "2026-03-15", 6000),
    # Anchor 31 Jan: the period after 31 Jan ends 28 Feb (last day of February), the next 31 Mar
    # (Stripe's "Billing cycle" page). Renewal 28 Feb: 1 x 1500 = 1500.
    Case(
        "anchor on the 31st",
        monthly(1500),
        1,
        "2026-01-31",
        ("2026-01-31", "2026-02-28"),
        "2026-02-28",
        1500,
        expected_next_end="2026-03-31",
        source="Stripe docs, Billing cycle (anchor on the 31st)",
    ),  # fmt: skip
    # Quarterly (month x 3) 90.00 anchored 1 Jan: current 1 Apr - 1 Jul, renewal 1 Jul = 9000, then 1 Oct.
    Case(
        "quarterly",
        monthly(9000, 3),
        1,
        "2026-01-01",
        ("2026-04-01", "2026-07-01"),
        "2026-07-01",
        9000,
        expected_next_end="2026-10-01",
    ),  # fmt: skip
    # Yearly 120.00: anchor 1 Mar 2025, current 1 Mar 2026 - 1 Mar 2027: renewal = 12000.
    Case("yearly", monthly(12000, 1, "year"), 1, "2025-03-01", ("2026-03-01", "2027-03-01"), "2027-03-01", 12000),
    # Graduated tiers (1-5 at 10.00, 6+ at 8.00 + 5.00 flat), 7 seats: 5 x 1000 + 2 x 800 + 500 = 7100.
    Case(
        "graduated tiers x7",
        tiered("graduated"),
        7,
        "2026-01-10",
        ("2026-02-10", "2026-03-10"),
        "2026-03-10",
        7100,
        source="Stripe docs, Tiered pricing (graduated: each tier prices its own units, flat fee once)",
    ),  # fmt: skip
    # Volume tiers, same table, 7 seats: all units at the last tier's rate: 7 x 800 + 500 = 6100.
    Case(
        "volume tiers x7",
        tiered("volume"),
        7,
        "2026-01-10",
        ("2026-02-10", "2026-03-10"),
        "2026-03-10",
        6100,
        source="Stripe docs, Tiered pricing (volume: every unit at the reached tier's rate)",
    ),  # fmt: skip
    # 25 % forever on 40.00: subtotal 4000, discount 1000 -> 3000 before tax.
    Case(
        "percent coupon forever",
        monthly(4000),
        1,
        "2026-01-05",
        ("2026-02-05", "2026-03-05"),
        "2026-03-05",
        4000,
        1000,
        coupon={"percent_off": 25.0, "duration": "forever"},
        discount_start="2026-01-05",
    ),  # fmt: skip
    # 10 % for 3 months from 1 Jan: invoices of 1 Jan, 1 Feb, 1 Mar discounted; Stripe's discount
    # ends 1 Apr, so the 1 Apr renewal is full price: 5000, no discount.
    Case(
        "repeating coupon used up",
        monthly(5000),
        1,
        "2026-01-01",
        ("2026-03-01", "2026-04-01"),
        "2026-04-01",
        5000,
        0,
        coupon={"percent_off": 10.0, "duration": "repeating", "duration_in_months": 3},
        discount_start="2026-01-01",
    ),  # fmt: skip
    # 10 % for 3 months from 1 Feb: 1 Feb and 1 Mar discounted, 1 Apr is the third: 5000 - 500.
    Case(
        "repeating coupon, last month",
        monthly(5000),
        1,
        "2026-01-01",
        ("2026-03-01", "2026-04-01"),
        "2026-04-01",
        5000,
        500,
        coupon={"percent_off": 10.0, "duration": "repeating", "duration_in_months": 3},
        discount_start="2026-02-01",
    ),  # fmt: skip
    # 5.00 off once, redeemed on the first invoice (1 Jan): the renewal of 1 Mar is full price: 3000.
    Case(
        "amount coupon once, used",
        monthly(3000),
        1,
        "2026-01-01",
        ("2026-02-01", "2026-03-01"),
        "2026-03-01",
        3000,
        0,
        coupon={"amount_off": 500, "currency": "eur", "duration": "once"},
        discount_start="2026-01-01",
    ),  # fmt: skip
    # Trial 24 Feb - 10 Mar (anchor = trial end): first paid invoice 10 Mar = 2 x 2000 = 4000, next end 10 Apr.
    Case(
        "trial then paid",
        monthly(2000),
        2,
        "2026-03-10",
        ("2026-02-24", "2026-03-10"),
        "2026-03-10",
        4000,
        trial=("2026-02-24", "2026-03-10"),
        expected_next_end="2026-04-10",
        source="Stripe docs, Trial periods (the first invoice after the trial is on its end date)",
    ),  # fmt: skip
]


class FakeStripe:
    """One Stripe account's lists, as the importer reads them (Stripe's JSON shapes)."""

    def __init__(self, lists: dict[str, list[dict[str, Any]]]) -> None:
        self.lists = lists

    def objects(self, stage: str, *, starting_after: str | None) -> list[dict[str, Any]]:
        data = self.lists.get(stage, [])
        ids = [obj["id"] for obj in data]
        return data[ids.index(starting_after) + 1 :] if starting_after else data

    def tax_ids(self, customer: dict[str, Any]) -> list[dict[str, Any]]:
        return []

    def payment_methods(self, customer_id: str) -> list[dict[str, Any]]:
        return []


def stripe_account(case: Case) -> dict[str, list[dict[str, Any]]]:
    price = {"id": "price_case", "object": "price", "active": True, "currency": "eur", "product": "prod_case",
             "type": "recurring", "tax_behavior": "exclusive", "metadata": {}, **case.price}  # fmt: skip
    start, end = (ts(case.period[0]), ts(case.period[1]))
    discounts = []
    coupons = []
    if case.coupon:
        coupon = {"id": "COUPON", "object": "coupon", "valid": True, **case.coupon}
        coupons.append(coupon)
        discounts.append({"id": "di_case", "object": "discount", "coupon": coupon,
                          "start": ts(case.discount_start or case.anchor)})  # fmt: skip
    subscription = {
        "id": "sub_case", "object": "subscription", "customer": "cus_case",
        "status": "trialing" if case.trial else "active", "billing_cycle_anchor": ts(case.anchor),
        "currency": "eur", "collection_method": "charge_automatically", "discounts": discounts,
        "trial_start": ts(case.trial[0]) if case.trial else None,
        "trial_end": ts(case.trial[1]) if case.trial else None, "metadata": {},
        "items": {"object": "list", "data": [{"id": "si_case", "price": price, "quantity": case.quantity,
                                              "current_period_start": start, "current_period_end": end}]},
    }  # fmt: skip
    return {
        "products": [{"id": "prod_case", "object": "product", "name": case.name, "active": True}],
        "prices": [price],
        "coupons": coupons,
        "customers": [
            {
                "id": "cus_case",
                "object": "customer",
                "email": "case@example.com",
                "name": "Case SARL",
                "currency": "eur",
                "address": {"country": "FR"},
            }
        ],  # fmt: skip
        "subscriptions": [subscription],
    }


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_next_renewal_is_billed_as_stripe_would(case: Case, monkeypatch):
    # given the Stripe account of the case, imported on a test clock inside the current period
    BrandFactory(is_default=True)
    TaxRateFactory()
    account = FakeStripe(stripe_account(case))
    monkeypatch.setattr(importer, "StripeSource", lambda **kwargs: account)
    clock = test_clock_create(name=case.name, frozen_time=datetime.fromtimestamp(ts(case.period[0]) + 3600, UTC))
    run = StripeImportRun.objects.create(account_id="acct_case", livemode=False, api_key="sk_test_case",
                                         test_clock=clock, counts={})  # fmt: skip
    importer.stripe_import_run(run=run)
    subscription = Subscription.objects.get(metadata__stripe_id="sub_case")
    renewal = datetime.fromtimestamp(ts(case.expected_date), UTC)
    assert subscription.current_period_end == renewal
    # when the clock passes the renewal
    test_clock_advance(clock=clock, to=renewal + timedelta(seconds=1))
    # then Tarif's invoice is Stripe's upcoming invoice: same date, same amounts before tax
    invoice = Invoice.objects.get(subscription=subscription, period_start=renewal)
    assert (invoice.subtotal, invoice.discount_total) == (case.expected_subtotal, case.expected_discount)
    assert invoice.total_excluding_tax == case.expected_subtotal - case.expected_discount
    if case.expected_next_end:
        assert invoice.period_end == datetime.fromtimestamp(ts(case.expected_next_end), UTC)
