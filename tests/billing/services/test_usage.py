from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Meter, Price, UsageEvent
from billing.services.usage import (
    MAX_BATCH_SIZE,
    UsageBatchTooLarge,
    UsageEventInput,
    UsageWindow,
    usage_aggregate,
    usage_aggregate_bulk,
    usage_aggregate_windows,
    usage_charge_amount,
    usage_events_record,
)
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db

NOW = utc(2024, 4, 20, 12)


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


APRIL_10 = utc(2024, 4, 10)


def event(customer, meter, external_id, value=Decimal(1), timestamp=APRIL_10, unique_value=""):
    return UsageEventInput(
        customer_id=customer.pk,
        meter_key=meter.key,
        external_id=external_id,
        value=value,
        timestamp=timestamp,
        unique_value=unique_value,
    )


def test_recording_is_idempotent_on_the_external_id(make_customer, meter_factory):
    customer, meter = make_customer(), meter_factory()
    batch = [event(customer, meter, "a", Decimal(5)), event(customer, meter, "b", Decimal(7))]

    first = usage_events_record(events=batch)
    again = usage_events_record(events=[*batch, event(customer, meter, "c"), event(customer, meter, "c")])

    assert (first.accepted, first.duplicates, first.errors) == (2, 0, ())
    assert (again.accepted, again.duplicates) == (1, 3)
    assert UsageEvent.objects.count() == 3
    assert usage_aggregate(customer_id=customer.pk, meter=meter, start=utc(2024, 4, 1), end=utc(2024, 5, 1)) == 13


def test_each_bad_event_is_reported_and_the_others_are_stored(make_customer, meter_factory):
    customer, meter = make_customer(), meter_factory()
    unique_meter = meter_factory(aggregation=Meter.Aggregation.UNIQUE_COUNT)
    batch = [
        event(customer, meter, "ok"),
        UsageEventInput(customer_id=customer.pk, meter_key="nope", external_id="m", timestamp=utc(2024, 4, 10)),
        UsageEventInput(customer_id=10**9, meter_key=meter.key, external_id="c", timestamp=utc(2024, 4, 10)),
        event(customer, meter, "neg", Decimal(-1)),
        event(customer, meter, "naive", timestamp=datetime(2024, 4, 10)),
        event(customer, meter, "future", timestamp=NOW + timedelta(hours=1)),
        event(customer, meter, "", Decimal(1)),
        event(customer, meter, "float", 1.5),
        event(customer, meter, "digits", Decimal("0.0000001")),
        event(customer, unique_meter, "no-unique-value"),
        event(customer, meter, "slightly-ahead", timestamp=NOW + timedelta(minutes=2)),
    ]

    result = usage_events_record(events=batch)

    assert result.accepted == 2
    assert [(error.index, error.code) for error in result.errors] == [
        (1, "unknown_meter"),
        (2, "unknown_customer"),
        (3, "negative_value"),
        (4, "naive_timestamp"),
        (5, "future_timestamp"),
        (6, "invalid_external_id"),
        (7, "invalid_value"),
        (8, "invalid_value"),
        (9, "missing_unique_value"),
    ]


def test_a_batch_holds_at_most_a_thousand_events(make_customer, meter_factory):
    customer, meter = make_customer(), meter_factory()

    with pytest.raises(UsageBatchTooLarge):
        usage_events_record(events=[event(customer, meter, str(n)) for n in range(MAX_BATCH_SIZE + 1)])


def test_a_full_batch_is_stored_in_a_few_queries(make_customer, meter_factory):
    customer, meter = make_customer(), meter_factory()

    with CaptureQueriesContext(connection) as queries:
        result = usage_events_record(events=[event(customer, meter, str(n)) for n in range(MAX_BATCH_SIZE)])

    assert result.accepted == MAX_BATCH_SIZE
    # Meters, customers, known ids, the inserts (SQLite caps parameters per statement: 8 of them;
    # PostgreSQL needs 2) and one event row per customer.
    # Issue 16 added the properties column: one more insert on SQLite (999 parameters a statement).
    assert len(queries) <= 13


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        (Meter.Aggregation.SUM, Decimal("16.5")),
        (Meter.Aggregation.MAX, Decimal(9)),
        (Meter.Aggregation.LAST, Decimal("2.5")),  # the latest timestamp, not the last received
        (Meter.Aggregation.UNIQUE_COUNT, Decimal(2)),
    ],
)
def test_each_aggregation(aggregation, expected, make_customer, meter_factory):
    customer, meter = make_customer(), meter_factory(aggregation=aggregation)
    usage_events_record(
        events=[
            event(customer, meter, "1", Decimal(5), utc(2024, 4, 2), unique_value="alice"),
            event(customer, meter, "3", Decimal("2.5"), utc(2024, 4, 9), unique_value="bob"),
            event(customer, meter, "2", Decimal(9), utc(2024, 4, 5), unique_value="alice"),
        ]
    )

    assert usage_aggregate(customer_id=customer.pk, meter=meter, start=utc(2024, 4, 1), end=utc(2024, 5, 1)) == expected


def test_an_event_at_the_period_end_belongs_to_the_next_period(make_customer, meter_factory):
    customer, meter = make_customer(), meter_factory()
    usage_events_record(
        events=[
            event(customer, meter, "start", Decimal(1), utc(2024, 3, 1)),
            event(customer, meter, "last second", Decimal(10), utc(2024, 3, 31, 23, 59, 59)),
            event(customer, meter, "boundary", Decimal(100), utc(2024, 4, 1)),
        ]
    )

    march = usage_aggregate(customer_id=customer.pk, meter=meter, start=utc(2024, 3, 1), end=utc(2024, 4, 1))
    april = usage_aggregate(customer_id=customer.pk, meter=meter, start=utc(2024, 4, 1), end=utc(2024, 5, 1))

    assert (march, april) == (11, 100)


def test_bulk_aggregation_over_many_customers_with_their_own_periods(make_customer, meter_factory):
    meters = {kind: meter_factory(aggregation=kind) for kind in Meter.Aggregation.values}
    customers = [make_customer() for _ in range(3)]
    events = []
    for index, customer in enumerate(customers):
        for meter in meters.values():
            events += [
                event(customer, meter, f"{index}-early", Decimal(index + 1), utc(2024, 4, 2), unique_value="x"),
                event(customer, meter, f"{index}-late", Decimal(10), utc(2024, 4, 18), unique_value="y"),
            ]
    usage_events_record(events=events)
    # Customer 0 bills from 1 April, customer 1 from 15 April, customer 2 over both windows.
    windows = [UsageWindow(customers[0].pk, meter.pk, utc(2024, 4, 1), utc(2024, 5, 1)) for meter in meters.values()]
    windows += [UsageWindow(customers[1].pk, meter.pk, utc(2024, 4, 15), utc(2024, 5, 15)) for meter in meters.values()]
    windows += [
        UsageWindow(customers[2].pk, meters["sum"].pk, utc(2024, 4, 1), utc(2024, 4, 15)),
        UsageWindow(customers[2].pk, meters["sum"].pk, utc(2024, 4, 15), utc(2024, 5, 15)),
    ]

    with CaptureQueriesContext(connection) as queries:
        usage = usage_aggregate_windows(windows=windows)

    assert usage[windows[0]] == 11  # sum: 1 + 10
    assert usage[UsageWindow(customers[0].pk, meters["max"].pk, utc(2024, 4, 1), utc(2024, 5, 1))] == 10
    assert usage[UsageWindow(customers[0].pk, meters["last"].pk, utc(2024, 4, 1), utc(2024, 5, 1))] == 10
    assert usage[UsageWindow(customers[0].pk, meters["unique_count"].pk, utc(2024, 4, 1), utc(2024, 5, 1))] == 2
    assert usage[UsageWindow(customers[1].pk, meters["sum"].pk, utc(2024, 4, 15), utc(2024, 5, 15))] == 10
    assert usage[(customers[2].pk, meters["sum"].pk, utc(2024, 4, 1), utc(2024, 4, 15))] == 3  # a plain tuple works
    assert usage[(customers[2].pk, meters["sum"].pk, utc(2024, 4, 15), utc(2024, 5, 15))] == 10
    assert usage[UsageWindow(customers[0].pk, meters["latest"].pk, utc(2024, 4, 1), utc(2024, 5, 1))] == 10
    # One meters query, then per round of distinct (customer, meter) pairs one query per kind
    # (two for `last` and for issue 16's `latest`).
    assert len(queries) <= 1 + 7 + 1


def test_bulk_aggregation_over_one_window(make_customer, meter_factory):
    meter = meter_factory()
    customers = [make_customer() for _ in range(2)]
    usage_events_record(events=[event(customers[0], meter, "a", Decimal(4))])

    usage = usage_aggregate_bulk(
        meter_ids=[meter.pk], customer_ids=[c.pk for c in customers], start=utc(2024, 4, 1), end=utc(2024, 5, 1)
    )

    assert usage == {(customers[0].pk, meter.pk): 4, (customers[1].pk, meter.pk): 0}


@pytest.mark.parametrize(
    ("fields", "quantity", "amount"),
    [
        ({"scheme": "per_unit", "unit_amount": Decimal("0.5")}, Decimal(1001), 501),  # 500.5 -> 501
        ({"scheme": "per_unit", "unit_amount": Decimal(100)}, Decimal("1.5"), 150),
        ({"scheme": "package", "unit_amount": Decimal(1000), "package_size": 100}, Decimal(101), 2000),
        (
            {"scheme": "tiered_graduated", "unit_amount": None, "tiers": [
                {"up_to": 10, "unit_amount": "0", "flat_amount": 500}, {"up_to": None, "unit_amount": "10"}]},
            Decimal("12.2"),  # 13 units started: 500 + 3 x 10
            530,
        ),
    ],
)  # fmt: skip
def test_usage_is_priced_by_the_scheme(fields, quantity, amount):
    price = Price(usage_type="metered", **fields)

    assert usage_charge_amount(price=price, quantity=quantity) == amount
