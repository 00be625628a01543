"""Usage at scale (issue 20): dedup keys, rollups equal to raw events, partitions, retention."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Meter, Price, Subscription, SubscriptionItem, UsageEvent, UsageEventKey, UsageRollup
from billing.services.usage import (
    PriceUsageWindow,
    UsageEventInput,
    UsageWindow,
    usage_aggregate_windows,
    usage_events_record,
)
from billing.services.usage_partitions import (
    DEFAULT_PARTITION,
    usage_partitions_drop_expired,
    usage_partitions_ensure,
    usage_partitions_list,
)
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="partitions are PostgreSQL's")

NOW = utc(2024, 4, 20, 12)
KINDS = [kind.value for kind in Meter.Aggregation]


class Rollback(Exception):
    pass


def in_rollback(example) -> None:
    """One example inside a transaction that is rolled back: examples never see each other."""
    block = transaction.atomic()
    block._from_testcase = True  # stands for the test case's transaction (lock-order checker)
    try:
        with block:
            example()
            raise Rollback
    except Rollback:
        pass


def record(customer, meter, external_id, timestamp, value=Decimal(1), unique_value="", properties=None):
    return usage_events_record(
        events=[
            UsageEventInput(
                customer_id=customer.pk,
                meter_key=meter.key,
                external_id=external_id,
                timestamp=timestamp,
                value=value,
                unique_value=unique_value or external_id,
                properties=properties,
            )
        ]
    )


@time_machine.travel(NOW, tick=False)
def test_an_event_id_sent_again_in_another_month_is_a_duplicate(make_customer, meter_factory):
    customer, meter = make_customer(), meter_factory()

    first = record(customer, meter, "evt-1", utc(2024, 1, 15), Decimal(5))
    again = record(customer, meter, "evt-1", utc(2024, 3, 15), Decimal(7))
    in_batch = usage_events_record(
        events=[
            UsageEventInput(
                customer_id=customer.pk, meter_key=meter.key, external_id="evt-2", timestamp=utc(2024, 2, 1)
            ),
            UsageEventInput(
                customer_id=customer.pk, meter_key=meter.key, external_id="evt-2", timestamp=utc(2024, 4, 1)
            ),
        ]
    )

    assert (first.accepted, first.duplicates) == (1, 0)
    assert (again.accepted, again.duplicates) == (0, 1)
    assert (in_batch.accepted, in_batch.duplicates) == (1, 1)
    assert sorted(UsageEvent.objects.values_list("external_id", "timestamp")) == [
        ("evt-1", utc(2024, 1, 15)),
        ("evt-2", utc(2024, 2, 1)),
    ]
    assert UsageEventKey.objects.count() == 2
    # the rollups counted each event once
    assert sum(UsageRollup.objects.values_list("event_count", flat=True)) == 2
    assert sum(UsageRollup.objects.values_list("value_sum", flat=True)) == Decimal(6)


@time_machine.travel(NOW, tick=False)
def test_the_billing_aggregation_reads_whole_days_from_rollups(make_customer, meter_factory):
    customer, meter = make_customer(), meter_factory()
    record(customer, meter, "edge-start", utc(2024, 3, 1, 18), Decimal(1))
    record(customer, meter, "middle", utc(2024, 3, 10, 9), Decimal(10))
    record(customer, meter, "edge-end", utc(2024, 3, 20, 6), Decimal(100))
    window = UsageWindow(customer.pk, meter.pk, utc(2024, 3, 1, 12), utc(2024, 3, 20, 12))
    assert usage_aggregate_windows(windows=[window])[window] == Decimal(111)

    # when the middle day's raw event is gone (as after retention), its rollup still counts
    UsageEvent.objects.filter(external_id="middle").delete()

    assert usage_aggregate_windows(windows=[window])[window] == Decimal(111)
    assert usage_aggregate_windows(windows=[window], rollups=False)[window] == Decimal(101)


# -- rollups equal raw events (every aggregation, with and without a price filter) ---------------

events_strategy = st.lists(
    st.tuples(
        st.integers(0, 1),  # customer
        st.integers(0, 5 * 24 - 1),  # hour over five days
        st.sampled_from([0, 0, 15, 30, 59]),  # minute: ties in `last` happen
        st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False, allow_infinity=False),
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from([None, {"region": "eu"}, {"region": "us"}, {"region": "eu", "tier": "gold"}]),
    ),
    max_size=30,
)
window_strategy = st.tuples(st.integers(0, 5 * 24), st.integers(1, 5 * 24 + 6))


@pytest.mark.parametrize("aggregation", KINDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=events_strategy, windows=st.lists(window_strategy, min_size=1, max_size=4))
def test_rollup_aggregation_equals_raw_aggregation(aggregation, make_customer, make_price, events, windows):
    base = utc(2024, 3, 10)

    def example():
        customers = [make_customer(), make_customer()]
        meter = Meter.objects.create(key=f"m_{aggregation}", name="m", aggregation=aggregation)
        filtered = make_price(1, scheme=Price.Scheme.PER_UNIT, meter=meter, usage_filter={"region": ["eu"]})
        with time_machine.travel(NOW, tick=False):
            for number, (who, hour, minute, value, unique, properties) in enumerate(events):
                result = record(
                    customers[who],
                    meter,
                    f"e{number}",
                    base + timedelta(hours=hour, minutes=minute),
                    value,
                    unique_value=unique,
                    properties=properties,
                )
                assert result.errors == ()
        keys: list = []
        for start_hour, length in windows:
            start = base + timedelta(hours=start_hour)
            end = start + timedelta(hours=length)
            for customer in customers:
                keys.append(UsageWindow(customer.pk, meter.pk, start, end))
                keys.append(PriceUsageWindow(customer.pk, meter.pk, start, end, filtered.pk))

        from_rollups = usage_aggregate_windows(windows=keys)
        from_raw = usage_aggregate_windows(windows=keys, rollups=False)

        assert from_rollups == from_raw

    in_rollback(example)


# -- partitions and retention (PostgreSQL) ----------------------------------------------------------


def partition_rows(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {name}")
        return cursor.fetchone()[0]


@postgresql_only
def test_usage_events_are_partitioned_by_month_with_a_default_partition():
    partitions = usage_partitions_list()

    assert partitions[0].name == "billing_usageevent_legacy" and partitions[0].start is None
    assert partitions[-1].name == DEFAULT_PARTITION and partitions[-1].is_default


@postgresql_only
def test_the_manager_creates_months_ahead_once_and_moves_events_out_of_default(make_customer, meter_factory):
    customer, meter = make_customer(), meter_factory()
    # an event far ahead (a test clock) lands in the DEFAULT partition
    UsageEvent.objects.create(customer=customer, meter=meter, external_id="x", timestamp=utc(2031, 5, 10))
    assert partition_rows(DEFAULT_PARTITION) == 1

    created = usage_partitions_ensure(ahead=2, at=utc(2031, 4, 3))
    again = usage_partitions_ensure(ahead=2, at=utc(2031, 4, 3))

    assert created == [
        "billing_usageevent_p2031_04",
        "billing_usageevent_p2031_05",
        "billing_usageevent_p2031_06",
    ]
    assert again == []
    assert partition_rows(DEFAULT_PARTITION) == 0
    assert partition_rows("billing_usageevent_p2031_05") == 1
    assert UsageEvent.objects.get(external_id="x").timestamp == utc(2031, 5, 10)


def metered_subscription(customer, price, *, period_start):
    subscription = Subscription.objects.create(
        customer=customer,
        status=Subscription.Status.ACTIVE,
        currency="EUR",
        cycle=price.cycle,
        billing_cycle_anchor=period_start,
        current_period_start=period_start,
        current_period_end=period_start + timedelta(days=30),
    )
    SubscriptionItem.objects.create(subscription=subscription, price=price)
    return subscription


@postgresql_only
def test_retention_drops_an_invoiced_month_and_keeps_one_not_yet_invoiced(
    make_customer, meter_factory, make_price, settings
):
    settings.TARIF_USAGE_RAW_RETENTION_DAYS = 30
    customer, meter = make_customer(), meter_factory()
    price = make_price(1, scheme=Price.Scheme.PER_UNIT, meter=meter)
    usage_partitions_ensure(ahead=1, at=utc(2031, 3, 1))
    with time_machine.travel(utc(2031, 4, 2), tick=False):
        record(customer, meter, "march", utc(2031, 3, 15), Decimal(4))
        record(customer, meter, "april", utc(2031, 4, 1, 8), Decimal(6))
    subscription = metered_subscription(customer, price, period_start=utc(2031, 3, 1))

    # negative control: March's period is not invoiced yet, so March stays
    kept = usage_partitions_drop_expired(at=utc(2031, 5, 15))
    assert "billing_usageevent_p2031_03" not in kept.dropped
    assert [name for name, _reason in kept.kept] == ["billing_usageevent_p2031_03"]
    assert UsageEvent.objects.filter(external_id="march").exists()

    # when the subscription has been billed for March (its period now starts in April)
    Subscription.objects.filter(pk=subscription.pk).update(
        current_period_start=utc(2031, 4, 1), current_period_end=utc(2031, 5, 1)
    )
    result = usage_partitions_drop_expired(at=utc(2031, 5, 15))

    # then March's raw events and dedup keys are gone, its rollup stays, April is untouched
    assert "billing_usageevent_p2031_03" in result.dropped
    assert "billing_usageevent_p2031_04" not in result.dropped
    assert list(UsageEvent.objects.values_list("external_id", flat=True)) == ["april"]
    assert list(UsageEventKey.objects.values_list("external_id", flat=True)) == ["april"]
    window = UsageWindow(customer.pk, meter.pk, utc(2031, 3, 1), utc(2031, 4, 1))
    assert usage_aggregate_windows(windows=[window])[window] == Decimal(4)


@postgresql_only
def test_retention_keeps_a_month_whose_rollups_do_not_match_its_events(make_customer, meter_factory, settings):
    settings.TARIF_USAGE_RAW_RETENTION_DAYS = 30
    customer, meter = make_customer(), meter_factory()
    usage_partitions_ensure(ahead=0, at=utc(2031, 3, 1))
    with time_machine.travel(utc(2031, 4, 2), tick=False):
        record(customer, meter, "march", utc(2031, 3, 15), Decimal(4))
    UsageRollup.objects.filter(customer=customer).delete()

    result = usage_partitions_drop_expired(at=utc(2031, 5, 15))

    assert "billing_usageevent_p2031_03" not in result.dropped
    assert dict(result.kept)["billing_usageevent_p2031_03"].startswith("rollups hold 0 events")
    assert UsageEvent.objects.filter(external_id="march").exists()


def test_without_a_retention_nothing_is_dropped(settings):
    settings.TARIF_USAGE_RAW_RETENTION_DAYS = None

    result = usage_partitions_drop_expired(at=utc(2040, 1, 1))

    assert (result.dropped, result.kept) == ((), ())


@time_machine.travel(NOW, tick=False)
def test_an_event_older_than_the_retention_is_refused(make_customer, meter_factory, settings):
    settings.TARIF_USAGE_RAW_RETENTION_DAYS = 30
    customer, meter = make_customer(), meter_factory()

    result = record(customer, meter, "old", NOW - timedelta(days=31))
    recent = record(customer, meter, "recent", NOW - timedelta(days=29))

    assert [error.code for error in result.errors] == ["too_old"]
    assert (recent.accepted, recent.errors) == (1, ())


@postgresql_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_batches_racing_with_the_same_events_store_them_once(make_customer, meter_factory, monkeypatch):
    import threading
    import time

    import billing.services.usage as usage_module

    customer, meter = make_customer(), meter_factory()
    claim = usage_module._usage_keys_claim

    def slow_claim(**kwargs):
        fresh = claim(**kwargs)
        time.sleep(0.3)  # both batches are between their key insert and their commit
        return fresh

    monkeypatch.setattr(usage_module, "_usage_keys_claim", slow_claim)
    batch = [
        UsageEventInput(
            customer_id=customer.pk, meter_key=meter.key, external_id=f"r{n}", timestamp=utc(2024, 4, 1 + n % 3)
        )
        for n in range(50)
    ]
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def run(index: int) -> None:
        try:
            barrier.wait()
            with time_machine.travel(NOW, tick=False):
                results[index] = usage_events_record(events=batch)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted((result.accepted, result.duplicates) for result in results) == [(0, 50), (50, 0)]
    assert UsageEvent.objects.count() == 50
    assert sum(UsageRollup.objects.values_list("event_count", flat=True)) == 50
