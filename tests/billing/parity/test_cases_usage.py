"""Hand-worked cases for issue 16's usage items (8: pricing models, 9: thresholds and
progressive billing), each run through the real services: usage events recorded by
`usage_events_record`, invoices made by the billing run.

Amounts are in cents (EUR); the subscription starts on 2026-01-01 (monthly), so the
renewal of 2026-02-01 bills January's usage and the one of 2026-03-01 February's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import Meter, Price
from billing.services.billing_run import billing_run_start
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.usage import UsageEventInput, usage_events_record
from billing.services.usage_thresholds import THRESHOLD_REACHED, usage_threshold_create, usage_thresholds_sweep
from config.events.models import DomainEvent
from invoices.models import Invoice

MONTHLY = {"kind": "interval", "unit": "month", "count": 1}
T0 = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    aggregation: str
    prices: list[dict]  # Price fields (usage_type metered, the case's meter)
    events: list[tuple]  # (value, properties, timestamp)
    expected: dict[int, int]  # price index -> usage line amount on the renewal of `billed_at`
    billed_at: datetime = FEB
    dimensions: list[str] = field(default_factory=list)


CASES = {
    # Lago, "Package" charge model page: $5 per 100 units, the first 100 free; 201 units
    # = 0 (100 free) + 2 started packages of 100 = $10.
    "lago_package_free_units": Case(
        "sum",
        [{"scheme": "package", "unit_amount": Decimal(500), "package_size": 100, "free_units": 100}],
        [(Decimal(201), {}, datetime(2026, 1, 10, tzinfo=UTC))],
        {0: 1000},
    ),
    # Hand-worked: usage within the free units costs nothing: max(0, 100 - 100) = 0 packages.
    "package_all_free": Case(
        "sum",
        [{"scheme": "package", "unit_amount": Decimal(500), "package_size": 100, "free_units": 100}],
        [(Decimal(100), {}, datetime(2026, 1, 10, tzinfo=UTC))],
        {0: 0},
    ),
    # After Lago, "Percentage" charge model page (1.2 % + $0.10 fixed fee, first 3 events
    # free of the fixed fee, first $500 free of the rate); hand-worked numbers:
    # transactions 100, 200, 300, 400, 50 € = 10000, 20000, 30000, 40000, 5000 cents.
    # Free amount 50000: t1 and t2 wholly free, t3 has 10000 chargeable, t4 40000, t5 5000.
    # Rate: (10000 + 40000 + 5000) x 1.2 % = 120 + 480 + 60 = 660; fixed fee on t4, t5: 2 x 10 = 20.
    # Total 680.
    "lago_percentage_fixed_fee_free_units_free_amount": Case(
        "sum",
        [
            {
                "scheme": "percentage",
                "percentage_rate": Decimal("1.2"),
                "fixed_amount": Decimal(10),
                "free_units": 3,
                "free_amount": Decimal(50000),
            }
        ],
        [
            (Decimal(10000), {}, datetime(2026, 1, 2, tzinfo=UTC)),
            (Decimal(20000), {}, datetime(2026, 1, 3, tzinfo=UTC)),
            (Decimal(30000), {}, datetime(2026, 1, 4, tzinfo=UTC)),
            (Decimal(40000), {}, datetime(2026, 1, 5, tzinfo=UTC)),
            (Decimal(5000), {}, datetime(2026, 1, 6, tzinfo=UTC)),
        ],
        {0: 680},
    ),
    # After Lago's per-transaction spending minimum and maximum (Percentage page); hand-worked:
    # 2 % of 1000, 10000, 50000 = 20, 200, 1000; bounded to [50, 300]: 50 + 200 + 300 = 550.
    "lago_percentage_per_transaction_min_max": Case(
        "sum",
        [
            {
                "scheme": "percentage",
                "percentage_rate": Decimal(2),
                "per_transaction_min_amount": Decimal(50),
                "per_transaction_max_amount": Decimal(300),
            }
        ],
        [
            (Decimal(1000), {}, datetime(2026, 1, 2, tzinfo=UTC)),
            (Decimal(10000), {}, datetime(2026, 1, 3, tzinfo=UTC)),
            (Decimal(50000), {}, datetime(2026, 1, 4, tzinfo=UTC)),
        ],
        {0: 550},
    ),
    # Hand-worked, rounding once per total (Lago rounds the fee, not each transaction):
    # 1.5 % of 101 three times = 1.515 x 3 = 4.545 -> 5 (per transaction it would be 2 x 3 = 6).
    "percentage_rounded_once": Case(
        "sum",
        [{"scheme": "percentage", "percentage_rate": Decimal("1.5")}],
        [(Decimal(101), {}, datetime(2026, 1, day, tzinfo=UTC)) for day in (2, 3, 4)],
        {0: 5},
    ),
    # Stripe "last_ever" / Lago "latest": a value reported in January is still the meter's
    # value in February, which has no event: 7 units x 100 = 700 on the 1 March renewal.
    "latest_ever_carries_into_an_empty_period": Case(
        "latest",
        [{"scheme": "per_unit", "unit_amount": Decimal(100)}],
        [(Decimal(7), {}, datetime(2026, 1, 20, tzinfo=UTC))],
        {0: 700},
        billed_at=MAR,
    ),
    # Negative control for the case above: `last` (in period) bills February's nothing: 0.
    "last_in_period_does_not_carry": Case(
        "last",
        [{"scheme": "per_unit", "unit_amount": Decimal(100)}],
        [(Decimal(7), {}, datetime(2026, 1, 20, tzinfo=UTC))],
        {0: 0},
        billed_at=MAR,
    ),
    # Lago charge filters / Stripe meter dimensions, hand-worked: one meter, a price per region.
    # EU: 3 + 1 calls x 10 = 40; US: 2 calls x 20 = 40; the APAC call matches no filter: not billed.
    "filters_per_region": Case(
        "sum",
        [
            {"scheme": "per_unit", "unit_amount": Decimal(10), "usage_filter": {"region": ["eu"]}},
            {"scheme": "per_unit", "unit_amount": Decimal(20), "usage_filter": {"region": ["us"]}},
        ],
        [
            (Decimal(3), {"region": "eu"}, datetime(2026, 1, 2, tzinfo=UTC)),
            (Decimal(1), {"region": "eu", "model": "large"}, datetime(2026, 1, 3, tzinfo=UTC)),
            (Decimal(2), {"region": "us"}, datetime(2026, 1, 4, tzinfo=UTC)),
            (Decimal(5), {"region": "apac"}, datetime(2026, 1, 5, tzinfo=UTC)),
        ],
        {0: 40, 1: 40},
        dimensions=["region", "model"],
    ),
    # Hand-worked: two dimensions in one filter (region eu AND model large): only the second event, 1 x 50.
    "filter_on_two_dimensions": Case(
        "sum",
        [{"scheme": "per_unit", "unit_amount": Decimal(50), "usage_filter": {"region": ["eu"], "model": ["large"]}}],
        [
            (Decimal(3), {"region": "eu", "model": "small"}, datetime(2026, 1, 2, tzinfo=UTC)),
            (Decimal(1), {"region": "eu", "model": "large"}, datetime(2026, 1, 3, tzinfo=UTC)),
        ],
        {0: 50},
        dimensions=["region", "model"],
    ),
}


def _world(customer_factory, meter_factory, product_factory, *, aggregation, dimensions, prices):
    customer = customer_factory(timezone="UTC")
    meter = meter_factory(aggregation=aggregation, dimensions=dimensions)
    product = product_factory(name="API calls")
    created = [
        Price.objects.create(
            product=product,
            currency="EUR",
            cycle=MONTHLY,
            usage_type=Price.UsageType.METERED,
            meter=meter,
            **fields,
        )
        for fields in prices
    ]
    for price in created:
        price.full_clean()  # the case's price passes the catalog's validation
    return customer, meter, created


def _record(customer, meter, events):
    result = usage_events_record(
        events=[
            UsageEventInput(
                customer_id=customer.pk,
                meter_key=meter.key,
                external_id=f"e{n}",
                timestamp=timestamp,
                value=value,
                properties=properties,
            )
            for n, (value, properties, timestamp) in enumerate(events)
        ]
    )
    assert not result.errors
    return result


def _renewal(subscription, period_start):
    return Invoice.objects.get(
        subscription=subscription, billing_reason="subscription_cycle", period_start=period_start
    )


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(CASES))
def test_usage_pricing_case(name, tax_rate, customer_factory, meter_factory, product_factory):
    case = CASES[name]
    customer, meter, prices = _world(
        customer_factory,
        meter_factory,
        product_factory,
        aggregation=case.aggregation,
        dimensions=case.dimensions,
        prices=case.prices,
    )
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(price=price, quantity=1) for price in prices], at=T0
    )
    _record(customer, meter, case.events)

    billing_run_start(as_of=FEB + timedelta(hours=1))
    if case.billed_at == MAR:
        billing_run_start(as_of=MAR + timedelta(hours=1))

    invoice = _renewal(subscription, case.billed_at)
    lines = {line.price_id: line for line in invoice.lines.filter(kind="usage")}
    assert {index: lines[price.pk].amount for index, price in enumerate(prices)} == case.expected
    for price in prices:
        if price.usage_filter:
            assert "region: " in lines[price.pk].description or "model: " in lines[price.pk].description


# -- item 9: thresholds and progressive billing --------------------------------------


def _metered_subscription(customer_factory, meter_factory, product_factory, unit_amount=100):
    customer, meter, (price,) = _world(
        customer_factory,
        meter_factory,
        product_factory,
        aggregation=Meter.Aggregation.SUM,
        dimensions=[],
        prices=[{"scheme": "per_unit", "unit_amount": Decimal(unit_amount)}],
    )
    subscription = subscription_create(customer=customer, items=[ItemSpec(price=price, quantity=1)], at=T0)
    return customer, meter, price, subscription


def _advance_clock_to(customer, at, monkeypatch):
    monkeypatch.setattr("config.clock.now", lambda customer=None: at)


@pytest.mark.django_db
def test_progressive_billing_then_period_end_bills_the_rest_once(
    tax_rate, customer_factory, meter_factory, product_factory, monkeypatch
):
    # Lago, "Progressive billing": threshold 10 € on usage; hand-worked:
    # 12 calls x 1 € by 10 January reach it: a threshold invoice of 1200;
    # 8 more calls: the period-end invoice bills 20 x 100 = 2000 and credits the 1200
    # already invoiced: 800 more; 1200 + 800 = 2000 billed in all, once.
    customer, meter, price, subscription = _metered_subscription(customer_factory, meter_factory, product_factory)
    usage_threshold_create(subscription=subscription, amount=1000, progressive_billing=True)
    _record(customer, meter, [(Decimal(12), {}, datetime(2026, 1, 10, tzinfo=UTC))])
    _advance_clock_to(customer, datetime(2026, 1, 10, 12, tzinfo=UTC), monkeypatch)

    usage_thresholds_sweep()
    monkeypatch.undo()
    usage_events_record(
        events=[
            UsageEventInput(
                customer_id=customer.pk,
                meter_key=meter.key,
                external_id="later",
                timestamp=datetime(2026, 1, 20, tzinfo=UTC),
                value=Decimal(8),
            )
        ]
    )
    billing_run_start(as_of=FEB + timedelta(hours=1))

    progressive = Invoice.objects.get(subscription=subscription, billing_reason="subscription_threshold")
    assert progressive.subtotal == 1200 and progressive.status == "open"
    renewal = _renewal(subscription, FEB)
    usage_amounts = sorted(line.amount for line in renewal.lines.filter(price=price))
    assert usage_amounts == [-1200, 2000]
    assert renewal.subtotal == 800
    assert progressive.subtotal + renewal.subtotal == 2000


@pytest.mark.django_db
def test_a_threshold_is_reported_once_per_period_and_again_the_next_period(
    tax_rate, customer_factory, meter_factory, product_factory, monkeypatch
):
    # Hand-worked: threshold of 5 units on the meter, without progressive billing.
    # January: 6 units (reached; a second sweep reports nothing more); February: 5 units
    # (reached again, in its own period). Two events in all, no threshold invoice.
    customer, meter, price, subscription = _metered_subscription(customer_factory, meter_factory, product_factory)
    usage_threshold_create(subscription=subscription, meter=meter, units=Decimal(5))
    _record(customer, meter, [(Decimal(6), {}, datetime(2026, 1, 10, tzinfo=UTC))])
    _advance_clock_to(customer, datetime(2026, 1, 11, tzinfo=UTC), monkeypatch)
    usage_thresholds_sweep()
    usage_thresholds_sweep()
    monkeypatch.undo()
    assert DomainEvent.objects.filter(type=THRESHOLD_REACHED).count() == 1

    billing_run_start(as_of=FEB + timedelta(hours=1))
    usage_events_record(
        events=[
            UsageEventInput(
                customer_id=customer.pk,
                meter_key=meter.key,
                external_id="feb",
                timestamp=datetime(2026, 2, 10, tzinfo=UTC),
                value=Decimal(5),
            )
        ]
    )
    billing_run_start(as_of=MAR + timedelta(hours=1))

    events = DomainEvent.objects.filter(type=THRESHOLD_REACHED).order_by("pk")
    assert [event.data["period_start"][:10] for event in events] == ["2026-01-01", "2026-02-01"]
    assert [event.data["usage_units"] for event in events] == ["6.000000", "5.000000"]
    assert not Invoice.objects.filter(billing_reason="subscription_threshold").exists()
    assert _renewal(subscription, FEB).lines.get(price=price).amount == 600
