"""The upcoming-invoice preview is the invoice the billing run then issues (issue 14).

For generated subscriptions (1-3 items across flat, per-seat, tiered graduated and
volume, metered prices; percent and amount coupons with their durations and product
limits; pending items of the subscription and of the customer, in its currency and in
another; usage; trials ending at the boundary; a quantity change mid-period (prorations);
customer credit), the preview taken at the period boundary and the invoice `manage.py bill`
issues at that instant (clock moved with time-machine) have the same lines, discounts,
tax, totals and currency. Issue 16 adds seats billed in arrears (and their change
mid-period) and a metered price with a minimum spend per period (its true-up line).
"""

from __future__ import annotations

import dataclasses
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from billing.models import Coupon, InvoiceItem, Price, Subscription, UsageEvent
from billing.services.changes import subscription_change
from billing.services.invoice_items import invoice_item_create
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.upcoming import upcoming_invoice
from billing.services.usage import usage_events_insert
from customers.models import Customer
from invoices.models import BalanceTransaction, Invoice
from invoices.services.drafts import tax_breakdown_rows
from invoices.types import InvoicePreview
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db

EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
EPOCH = utc(2026, 1, 1)
TIERS = [
    {"up_to": 5, "unit_amount": "1000"},
    {"up_to": 20, "unit_amount": "800", "flat_amount": 2500},
    {"up_to": None, "unit_amount": "650"},
]
KINDS = ["flat", "seats", "graduated", "volume", "metered_unit", "metered_tiered"]
# Issue 16, cycles: a per-seat fee billed in arrears, and a metered price with a minimum spend.
KINDS += ["seats_in_arrears", "metered_minimum"]


class Rollback(Exception):
    pass


def in_rollback(example) -> None:
    """One example inside a transaction that is rolled back: examples never see each other."""
    block = transaction.atomic()
    # It stands for a test case's own transaction: each service call in it is a transaction
    # of its own for the lock-order checker (config/locking.py), as in production.
    block._from_testcase = True
    try:
        with block:
            example()
            raise Rollback
    except Rollback:
        pass


# -- the comparison ------------------------------------------------------------------


def _rate(value: Any) -> str:
    return f"{Decimal(value).normalize():f}"


def _quantity(value: Any) -> str:
    return f"{Decimal(value).normalize():f}"


def _unit(value: Any) -> str | None:
    return None if value is None else f"{Decimal(value).normalize():f}"


def preview_view(preview: InvoicePreview) -> dict[str, Any]:
    """What a customer reads on the previewed invoice."""
    return {
        "currency": preview.currency,
        "lines": [
            (
                line.draft.kind,
                line.draft.description,
                line.draft.period_start,
                line.draft.period_end,
                _quantity(line.draft.quantity),
                _unit(line.draft.unit_amount),
                line.draft.amount,
                line.totals.discount_amount,
                _rate(line.tax_rate),
                line.tax_category,
                line.draft.tax_inclusive,
                line.totals.tax_amount,
            )
            for line in preview.lines
        ],
        "discounts": [
            {"label": label, "amount": amount}
            for label, amount in zip(preview.discount_labels, preview.totals.discount_amounts, strict=True)
        ],
        "tax_breakdown": tax_breakdown_rows(preview.tax_breakdown),
        "subtotal": preview.totals.subtotal,
        "discount_total": preview.totals.discount_total,
        "tax_total": preview.totals.tax_total,
        "total_excluding_tax": preview.totals.total_excluding_tax,
        "total": preview.totals.total,
        "balance_applied": preview.balance_applied,
        "amount_due": preview.amount_due,
    }


def invoice_view(invoice: Invoice) -> dict[str, Any]:
    """The same, read from the issued invoice."""
    return {
        "currency": invoice.currency,
        "lines": [
            (
                line.kind,
                line.description,
                line.period_start,
                line.period_end,
                _quantity(line.quantity),
                _unit(line.unit_amount),
                line.amount,
                line.discount_amount,
                _rate(line.tax_rate),
                line.tax_category,
                line.tax_inclusive,
                line.tax_amount,
            )
            for line in invoice.lines.order_by("position", "pk")
        ],
        "discounts": invoice.custom_fields.get("discounts", []),
        "tax_breakdown": invoice.tax_breakdown,
        "subtotal": invoice.subtotal,
        "discount_total": invoice.discount_total,
        "tax_total": invoice.tax_total,
        "total_excluding_tax": invoice.total_excluding_tax,
        "total": invoice.total,
        "balance_applied": invoice.starting_balance_applied,
        "amount_due": invoice.amount_due,
    }


def assert_preview_is_invoice(preview: InvoicePreview, invoice: Invoice | None) -> None:
    if not preview.lines:
        # Nothing to bill (only metered items, in a trial): the run issues no invoice.
        assert invoice is None
        return
    assert invoice is not None, "the run issued no invoice"
    assert invoice.status in (Invoice.Status.OPEN, Invoice.Status.PAID), invoice.status
    assert preview_view(preview) == invoice_view(invoice)


# -- building a case -----------------------------------------------------------------

coupons = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "percent_off": st.integers(1, 100),
            "amount_off": st.none(),
            "duration": st.sampled_from(["once", "repeating", "forever"]),
            "periods": st.integers(1, 3),
            "first_product_only": st.booleans(),
        }
    ),
    st.fixed_dictionaries(
        {
            "percent_off": st.none(),
            "amount_off": st.integers(1, 20_000),
            "duration": st.sampled_from(["once", "repeating", "forever"]),
            "periods": st.integers(1, 3),
            "first_product_only": st.booleans(),
        }
    ),
)
pending_items = st.lists(
    st.fixed_dictionaries(
        {
            "on_subscription": st.booleans(),
            "amount": st.integers(-30_000, 30_000).filter(bool),
            "discountable": st.booleans(),
        }
    ),
    max_size=3,
)
cases = st.fixed_dictionaries(
    {
        "tz": st.sampled_from(["UTC", "Europe/Paris", "America/New_York"]),
        "start_seconds": st.integers(0, 300 * 86_400),
        "items": st.lists(
            st.fixed_dictionaries(
                {
                    "kind": st.sampled_from(KINDS),
                    "amount": st.integers(1, 100_000),
                    "quantity": st.integers(1, 30),
                    "inclusive": st.booleans(),
                    "aggregation": st.sampled_from(["sum", "max", "last"]),
                    "usage": st.lists(st.tuples(st.floats(0, 0.999), st.integers(0, 5_000)), max_size=3),
                }
            ),
            min_size=1,
            max_size=3,
            unique_by=lambda item: item["kind"],
        ),
        "coupon": coupons,
        "trial_days": st.one_of(st.none(), st.integers(1, 30)),
        "pending": pending_items,
        "pending_in_other_currency": st.booleans(),
        "second_subscription_in_usd": st.booleans(),
        "credit": st.one_of(st.none(), st.integers(1, 50_000)),
        "more_seats_mid_period": st.booleans(),
    }
)


def _price(make_price, make_metered_price, item: dict[str, Any], currency: str) -> tuple[Price, int]:
    behavior = Price.TaxBehavior.INCLUSIVE if item["inclusive"] else Price.TaxBehavior.EXCLUSIVE
    common = {"currency": currency, "tax_behavior": behavior}
    kind = item["kind"]
    if kind == "flat":
        return make_price(item["amount"], nickname="Plan", **common), 1
    if kind == "seats":
        return make_price(item["amount"], nickname="Seats", **common), item["quantity"]
    if kind in ("graduated", "volume"):
        scheme = Price.Scheme.TIERED_GRADUATED if kind == "graduated" else Price.Scheme.TIERED_VOLUME
        return make_price(None, scheme=scheme, tiers=TIERS, nickname=kind.title(), **common), item["quantity"]
    if kind == "seats_in_arrears":
        arrears = Price.BillingTiming.IN_ARREARS
        return make_price(item["amount"], nickname="Arrears", billing_timing=arrears, **common), item["quantity"]
    unit = f"{Decimal(item['amount']) / 1000:f}"
    if kind == "metered_minimum":
        minimum = {"minimum_amount": item["amount"] * 3}
        return make_metered_price(unit, aggregation=item["aggregation"], nickname="Minimum", **minimum, **common), 1
    if kind == "metered_unit":
        return make_metered_price(unit, aggregation=item["aggregation"], nickname="API calls", **common), 1
    return (
        make_metered_price(
            None,
            aggregation=item["aggregation"],
            scheme=Price.Scheme.TIERED_GRADUATED,
            tiers=TIERS,
            nickname="Storage",
            **common,
        ),
        1,
    )


def _switch_currency(customer: Customer, currency: str) -> None:
    """A customer's currency changes while it has no subscription (customer_update allows
    it), or rows from before customers were held to one currency: the database row."""
    Customer.objects.filter(pk=customer.pk).update(currency=currency)
    customer.refresh_from_db()


def build_case(case: dict[str, Any], *, make_customer, make_price, make_metered_price) -> list[Subscription]:
    start = EPOCH + timedelta(seconds=case["start_seconds"])
    customer = make_customer(timezone=case["tz"], currency="USD" if case["pending_in_other_currency"] else "EUR")
    if case["pending_in_other_currency"]:
        invoice_item_create(customer=customer, amount=4_200, description="Setup (USD)", at=start)
        _switch_currency(customer, "EUR")

    specs, metered = [], []
    for item in case["items"]:
        price, quantity = _price(make_price, make_metered_price, item, "EUR")
        specs.append(ItemSpec(price, quantity))
        if price.usage_type == Price.UsageType.METERED:
            metered.append((price, item["usage"]))
    coupon = None
    if case["coupon"]:
        data = case["coupon"]
        coupon = Coupon.objects.create(
            name="Deal",
            percent_off=Decimal(data["percent_off"]) if data["percent_off"] else None,
            amount_off=data["amount_off"],
            currency="EUR" if data["amount_off"] else "",
            duration=data["duration"],
            duration_in_periods=data["periods"] if data["duration"] == "repeating" else None,
        )
        if data["first_product_only"]:
            coupon.applies_to.add(specs[0].price.product)
    subscription = subscription_create(
        customer=customer, items=specs, at=start, trial_days=case["trial_days"] or 0, coupon=coupon
    )
    subscriptions = [subscription]

    period_start, boundary = subscription.current_period_start, subscription.current_period_end
    span = (boundary - period_start).total_seconds()
    events = [
        UsageEvent(
            customer=customer,
            meter=price.meter,
            external_id=f"{price.pk}-{n}",
            value=Decimal(value),
            timestamp=period_start + timedelta(seconds=int(span * fraction)),
        )
        for price, usage in metered
        for n, (fraction, value) in enumerate(usage)
    ]
    usage_events_insert(rows=events)
    during = period_start + timedelta(seconds=span / 2)
    for n, pending in enumerate(case["pending"]):
        invoice_item_create(
            customer=customer,
            subscription=subscription if pending["on_subscription"] else None,
            amount=pending["amount"],
            description=f"One-off {n}",
            discountable=pending["discountable"],
            at=during,
        )
    if case["more_seats_mid_period"]:
        # A quantity change mid-period: proration items wait for the renewal.
        bumped = next((spec.price.pk for spec in specs if spec.price.usage_type == Price.UsageType.LICENSED), None)
        specs = [ItemSpec(spec.price, spec.quantity + (spec.price.pk == bumped)) for spec in specs]
        subscription_change(subscription=subscription, items=specs, at=during)
    if case["credit"]:
        BalanceTransaction.objects.create(
            customer=customer, currency="EUR", amount=case["credit"], kind="adjustment", created_at=during
        )
    if case["second_subscription_in_usd"]:
        # The same customer also billed in USD, renewing at the same boundary.
        _switch_currency(customer, "USD")
        usd = subscription_create(
            customer=customer,
            items=[ItemSpec(make_price(1_900, currency="USD", nickname="USD plan"))],
            at=period_start,
            billing_cycle_anchor=boundary,
            trial_days=0,
        )
        invoice_item_create(customer=customer, amount=900, description="Support (USD)", at=during)
        subscriptions.append(usd)
    return subscriptions


def preview_then_bill(subscriptions: list[Subscription]) -> list[tuple[InvoicePreview, Invoice | None]]:
    """Preview each subscription at its boundary, then run `manage.py bill` at that instant."""
    boundary = max(subscription.current_period_end for subscription in subscriptions)
    previews = [upcoming_invoice(subscription=subscription, at=boundary) for subscription in subscriptions]
    with time_machine.travel(boundary, tick=False):
        call_command("bill", "--inline", "--no-progress", stdout=io.StringIO())
    return [
        (
            preview,
            Invoice.objects.filter(
                subscription=subscription,
                billing_reason="subscription_cycle",
                period_start=subscription.current_period_end,
            ).first(),
        )
        for preview, subscription in zip(previews, subscriptions, strict=True)
    ]


def describe(preview: InvoicePreview) -> None:
    """What the example covered (pytest --hypothesis-show-statistics)."""
    kinds = {line.draft.kind for line in preview.lines}
    for kind in sorted(kinds):
        event(f"line: {kind}")
    if not preview.lines:
        event("nothing to bill")
    if preview.discount_labels:
        event("discount")
    if preview.balance_applied:
        event("customer credit applied" if preview.balance_applied > 0 else "negative total to the balance")
    event(f"currency: {preview.currency}")


@EXAMPLES
@given(case=cases)
def test_the_upcoming_invoice_is_the_invoice_the_billing_run_issues(
    make_customer, make_price, make_metered_price, case
):
    def example():
        subscriptions = build_case(
            case, make_customer=make_customer, make_price=make_price, make_metered_price=make_metered_price
        )

        pairs = preview_then_bill(subscriptions)

        for preview, invoice in pairs:
            assert_preview_is_invoice(preview, invoice)
            describe(preview)
        for flag in ("trial_days", "pending_in_other_currency", "second_subscription_in_usd", "more_seats_mid_period"):
            if case[flag]:
                event(flag)
        # Every pending item in a currency some subscription bills was invoiced, once.
        billed = {subscription.currency for subscription in subscriptions}
        left = InvoiceItem.objects.filter(customer=subscriptions[0].customer, invoice__isnull=True)
        assert not left.filter(currency__in=billed).exists()
        assert left.exclude(currency__in=billed).count() == (
            1 if case["pending_in_other_currency"] and not case["second_subscription_in_usd"] else 0
        )

    in_rollback(example)


# -- negative controls: the comparison is not vacuous ----------------------------------

RICH_CASE = {
    "tz": "Europe/Paris",
    "start_seconds": 40 * 86_400,
    "items": [
        {"kind": "seats", "amount": 1_500, "quantity": 3, "inclusive": False, "aggregation": "sum", "usage": []},
        {
            "kind": "metered_unit",
            "amount": 500,
            "quantity": 1,
            "inclusive": False,
            "aggregation": "sum",
            "usage": [(0.2, 1_000), (0.7, 3_000)],
        },
    ],
    "coupon": {"percent_off": 10, "amount_off": None, "duration": "forever", "periods": 1, "first_product_only": False},
    "trial_days": None,
    "pending": [{"on_subscription": False, "amount": 2_000, "discountable": True}],
    "pending_in_other_currency": True,
    "second_subscription_in_usd": True,
    "credit": 1_000,
    "more_seats_mid_period": True,
}


def _mutate_line(preview: InvoicePreview, **changes: Any) -> InvoicePreview:
    first = preview.lines[0]
    line = dataclasses.replace(first, draft=dataclasses.replace(first.draft, **changes))
    return dataclasses.replace(preview, lines=(line, *preview.lines[1:]))


MUTATIONS = {
    "amount": lambda p: _mutate_line(p, amount=p.lines[0].draft.amount + 1),
    "description": lambda p: _mutate_line(p, description=p.lines[0].draft.description + "!"),
    "quantity": lambda p: _mutate_line(p, quantity=p.lines[0].draft.quantity + 1),
    "unit amount": lambda p: _mutate_line(p, unit_amount=(p.lines[0].draft.unit_amount or 0) + 1),
    "period": lambda p: _mutate_line(p, period_end=p.lines[0].draft.period_end + timedelta(seconds=1)),
    "a line dropped": lambda p: dataclasses.replace(p, lines=p.lines[1:]),
    "tax": lambda p: dataclasses.replace(p, totals=dataclasses.replace(p.totals, tax_total=p.totals.tax_total + 1)),
    "discount": lambda p: dataclasses.replace(p, discount_labels=("Other",)),
    "currency": lambda p: dataclasses.replace(p, currency="USD"),
    "balance": lambda p: dataclasses.replace(p, amount_due=p.amount_due + 1),
}


def test_the_rich_case_agrees(make_customer, make_price, make_metered_price):
    subscriptions = build_case(
        RICH_CASE, make_customer=make_customer, make_price=make_price, make_metered_price=make_metered_price
    )

    pairs = preview_then_bill(subscriptions)

    for preview, invoice in pairs:
        assert_preview_is_invoice(preview, invoice)
    eur, usd = (invoice_view(invoice) for _preview, invoice in pairs)
    assert [line[0] for line in eur["lines"]] == ["subscription", "usage", "one_off", "proration", "proration"]
    assert eur["discounts"] and eur["balance_applied"] == 1_000
    # "Setup (USD)" went on the USD subscription's first invoice; the later item waits for its renewal.
    assert [line[1] for line in usd["lines"]] == ["USD plan", "Support (USD)"]


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_negative_control_a_preview_that_differs_fails_the_comparison(
    mutation, make_customer, make_price, make_metered_price
):
    subscriptions = build_case(
        RICH_CASE, make_customer=make_customer, make_price=make_price, make_metered_price=make_metered_price
    )
    (preview, invoice), _usd = preview_then_bill(subscriptions)
    assert_preview_is_invoice(preview, invoice)

    with pytest.raises(AssertionError):
        assert_preview_is_invoice(MUTATIONS[mutation](preview), invoice)
