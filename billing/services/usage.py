"""Metered usage: recording events idempotently and aggregating them per billing period.

An event belongs to the period [start, end) that contains its timestamp, so an event
stamped exactly at a period's end is billed with the next period. Usage is billed in
arrears: a renewal invoice carries the usage of the period that just ended.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import NamedTuple, cast

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Aggregate, Count, Max, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.utils.translation import gettext as _

from billing.limits import MAX_USAGE_VALUE
from billing.models import Meter, Price, UsageEvent
from billing.pricing import PercentageRule, percentage_amount
from billing.selectors import price_amount_for
from config import clock
from config.errors import DomainError
from config.events.log import EventRow, events_record_bulk
from config.modes import scope_to_mode
from config.money import round_fraction
from customers.models import Customer

MAX_BATCH_SIZE = 1000
# Event properties (issue 16): few short string values, so filters stay cheap and rows small.
MAX_EVENT_PROPERTIES = 10
MAX_PROPERTY_KEY_LENGTH = 40
MAX_PROPERTY_VALUE_LENGTH = 100
# Clocks drift: an event a little ahead of our clock is accepted, one far ahead is a bug.
FUTURE_TOLERANCE = timedelta(minutes=5)
# Windows per aggregation query: keeps the OR-ed conditions below SQLite's expression depth limit.
WINDOWS_PER_QUERY = 200

_VALUE_FIELD = UsageEvent._meta.get_field("value")
# CharFields: their max_length is set (the stubs type every field's as int | None).
_EXTERNAL_ID_MAX = cast(int, UsageEvent._meta.get_field("external_id").max_length)
_UNIQUE_VALUE_MAX = cast(int, UsageEvent._meta.get_field("unique_value").max_length)


@dataclass(frozen=True, slots=True)
class UsageEventInput:
    customer_id: int
    meter_key: str
    external_id: str  # the integrator's id: sending the same event twice records it once
    timestamp: datetime
    value: Decimal | int = Decimal(1)
    unique_value: str = ""  # what a unique_count meter counts (e.g. a user id)
    properties: Mapping[str, object] | None = None  # dimensions (issue 16): {"region": "eu"}


@dataclass(frozen=True, slots=True)
class UsageEventError:
    index: int  # position in the batch
    external_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class UsageBatchResult:
    accepted: int  # new events stored
    duplicates: int  # events already known (same meter and external id): not errors
    errors: tuple[UsageEventError, ...]


class UsageBatchTooLarge(DomainError, ValidationError):
    code = "batch_too_large"
    http_status = 400


def _check_value(value: object) -> tuple[Decimal | None, str | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return (
            None,
            "invalid_value",
            _("The value must be a number (int or Decimal), not %(type)s.") % {"type": type(value).__name__},
        )
    amount = Decimal(value)
    if not amount.is_finite():
        return None, "invalid_value", _("The value must be a finite number.")
    if amount < 0:
        return None, "negative_value", _("Usage cannot be negative (got %(value)s).") % {"value": amount}
    if amount > MAX_USAGE_VALUE:
        return (
            None,
            "out_of_bounds",
            _("One event's value is at most %(maximum)s.") % {"maximum": f"{MAX_USAGE_VALUE:,}"},
        )
    try:
        quantized = amount.quantize(Decimal(1).scaleb(-_VALUE_FIELD.decimal_places))
    except InvalidOperation:
        quantized = None
    integer_digits = _VALUE_FIELD.max_digits - _VALUE_FIELD.decimal_places
    if quantized is None or quantized != amount or quantized.adjusted() >= integer_digits:
        return (
            None,
            "invalid_value",
            _("The value has too many digits (at most %(int)s before and %(dec)s after the point).")
            % {
                "int": integer_digits,
                "dec": _VALUE_FIELD.decimal_places,
            },
        )
    return amount, None, None


def _properties_error(properties: object) -> str | None:
    """Why an event's properties are refused, or None: a flat object of short strings."""
    if properties is None:
        return None
    if not isinstance(properties, Mapping):
        return _("The properties must be an object.")
    if len(properties) > MAX_EVENT_PROPERTIES:
        return _("An event has at most %(max)s properties.") % {"max": MAX_EVENT_PROPERTIES}
    for key, value in properties.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_PROPERTY_KEY_LENGTH:
            return _("A property name has 1 to %(max)s characters.") % {"max": MAX_PROPERTY_KEY_LENGTH}
        if not isinstance(value, str) or len(value) > MAX_PROPERTY_VALUE_LENGTH or "\x00" in value:
            return _("A property value is a string of at most %(max)s characters.") % {"max": MAX_PROPERTY_VALUE_LENGTH}
    return None


@transaction.atomic(savepoint=False)
def usage_events_record(*, events: Sequence[UsageEventInput]) -> UsageBatchResult:
    """Record up to MAX_BATCH_SIZE usage events; each bad event is reported, the others stored.

    Idempotent: an event whose (meter, external id) is already stored -- or appears
    earlier in the same batch -- counts as a duplicate and changes nothing. Two
    batches racing with the same event store it once (the unique constraint decides).
    """
    if len(events) > MAX_BATCH_SIZE:
        raise UsageBatchTooLarge(
            _("Send at most %(max)s usage events per batch (got %(count)s).")
            % {"max": MAX_BATCH_SIZE, "count": len(events)},
            code="batch_too_large",
        )
    meters = {meter.key: meter for meter in Meter.objects.filter(key__in={event.meter_key for event in events})}
    # Through the API, a customer of the other mode is unknown (scoped to the calling key's mode).
    customers = scope_to_mode(Customer.objects.select_related("test_clock")).in_bulk(
        {event.customer_id for event in events}
    )
    errors: list[UsageEventError] = []
    candidates: list[tuple[int, UsageEvent]] = []

    def refuse(index: int, event: UsageEventInput, code: str, message: str) -> None:
        errors.append(UsageEventError(index=index, external_id=str(event.external_id), code=code, message=message))

    for index, event in enumerate(events):
        meter = meters.get(event.meter_key)
        customer = customers.get(event.customer_id)
        value, value_code, value_message = _check_value(event.value)
        external_id = event.external_id if isinstance(event.external_id, str) else ""
        if not external_id or len(external_id) > _EXTERNAL_ID_MAX:
            refuse(index, event, "invalid_external_id", _("Each event needs an id of 1 to 100 characters."))
        elif meter is None:
            refuse(index, event, "unknown_meter", _("No meter has the key %(key)s.") % {"key": event.meter_key})
        elif customer is None:
            refuse(index, event, "unknown_customer", _("No customer has the id %(id)s.") % {"id": event.customer_id})
        elif value_code is not None:
            refuse(index, event, value_code, value_message or "")
        elif not isinstance(event.timestamp, datetime) or event.timestamp.utcoffset() is None:
            refuse(index, event, "naive_timestamp", _("The timestamp needs a time zone (UTC offset)."))
        elif event.timestamp > clock.now(customer=customer) + FUTURE_TOLERANCE:
            refuse(index, event, "future_timestamp", _("The timestamp is in the future."))
        elif len(event.unique_value) > _UNIQUE_VALUE_MAX:
            refuse(index, event, "invalid_unique_value", _("The unique value is longer than 200 characters."))
        elif meter.aggregation == Meter.Aggregation.UNIQUE_COUNT and not event.unique_value:
            refuse(index, event, "missing_unique_value", _("A unique-count meter needs the value to count once."))
        elif (properties_message := _properties_error(event.properties)) is not None:
            refuse(index, event, "invalid_properties", properties_message)
        else:
            assert value is not None  # _check_value gives a value exactly when it gives no error code
            candidates.append(
                (
                    index,
                    UsageEvent(
                        customer_id=customer.pk,
                        meter_id=meter.pk,
                        external_id=external_id,
                        value=value,
                        unique_value=event.unique_value,
                        timestamp=event.timestamp,
                        properties=dict(event.properties or {}),
                    ),
                )
            )

    known = set(
        UsageEvent.objects.filter(
            meter_id__in={row.meter_id for _, row in candidates},
            external_id__in={row.external_id for _, row in candidates},
        ).values_list("meter_id", "external_id")
    )
    new_rows: list[UsageEvent] = []
    duplicates = 0
    for _index, row in candidates:
        identity = (row.meter_id, row.external_id)
        if identity in known:
            duplicates += 1
            continue
        known.add(identity)
        new_rows.append(row)
    UsageEvent.objects.bulk_create(new_rows, batch_size=500, ignore_conflicts=True)

    per_customer = Counter(row.customer_id for row in new_rows)
    events_record_bulk(
        rows=[
            EventRow(
                type="billing.meter_events.recorded",
                object_type="customer",
                object_id=customer_id,
                customer_id=customer_id,
                occurred_at=clock.now(customer=customers[customer_id]),
                data={"events": count},
                livemode=customers[customer_id].livemode,
            )
            for customer_id, count in sorted(per_customer.items())
        ]
    )
    return UsageBatchResult(accepted=len(new_rows), duplicates=duplicates, errors=tuple(errors))


# -- aggregation -----------------------------------------------------------------


class UsageWindow(NamedTuple):
    """One customer's usage on one meter over [start, end).

    A NamedTuple: a plain tuple (customer_id, meter_id, start, end) is an equal key.
    """

    customer_id: int
    meter_id: int
    start: datetime
    end: datetime


class PriceUsageWindow(NamedTuple):
    """Usage of one price over [start, end): for prices that read their own events
    (issue 16: a usage filter selects some of the meter's events; percentage pricing
    needs each transaction). Other prices share their meter's UsageWindow."""

    customer_id: int
    meter_id: int
    start: datetime
    end: datetime
    price_id: int


UsageKey = UsageWindow | PriceUsageWindow


class TransactionUsage(Decimal):
    """Usage (the sum of the events' values) that also carries each event's value, in order,
    for percentage pricing. Arithmetic on it gives plain Decimals."""

    transactions: tuple[Decimal, ...] = ()

    @classmethod
    def of(cls, transactions: Sequence[Decimal]) -> TransactionUsage:
        usage = cls(sum(transactions, Decimal(0)))
        usage.transactions = tuple(transactions)
        return usage


def price_reads_own_events(price: Price) -> bool:
    return bool(price.usage_filter) or price.scheme == Price.Scheme.PERCENTAGE


def usage_key(*, customer_id: int, price: Price, start: datetime, end: datetime) -> UsageKey:
    """The key under which the usage of a metered `price` over [start, end) is read."""
    meter_id = price_meter_id(price=price)
    if price_reads_own_events(price):
        return PriceUsageWindow(customer_id, meter_id, start, end, price.pk)
    return UsageWindow(customer_id, meter_id, start, end)


def price_meter_id(*, price: Price) -> int:
    """The meter of a metered price (`Price.clean()` requires one)."""
    if price.meter_id is None:
        raise ValueError(f"Price {price.pk} is not metered.")
    return price.meter_id


def _window_q(window: UsageWindow, *, aggregation: str = "") -> Q:
    condition = Q(customer_id=window.customer_id, meter_id=window.meter_id, timestamp__lt=window.end)
    if aggregation == Meter.Aggregation.LATEST:
        return condition  # the latest value ever: events before the window count too
    return condition & Q(timestamp__gte=window.start)


def _since(start: datetime, aggregation: str) -> dict[str, datetime]:
    """The lower time bound of a window: none for a latest-ever meter (issue 16)."""
    return {} if aggregation == Meter.Aggregation.LATEST else {"timestamp__gte": start}


_SQL_AGGREGATES: dict[str, Callable[[], Aggregate]] = {
    Meter.Aggregation.SUM: lambda: Sum("value"),
    Meter.Aggregation.MAX: lambda: Max("value"),
    Meter.Aggregation.UNIQUE_COUNT: lambda: Count("unique_value", distinct=True),
}


def _aggregate_by_pair(
    condition: Q, aggregation: str, *, base: QuerySet[UsageEvent] | None = None
) -> dict[tuple[int, int], Decimal]:
    """(customer id, meter id) -> aggregated value of the events matching `condition`."""
    events = (UsageEvent.objects.all() if base is None else base).filter(condition)
    if aggregation not in (Meter.Aggregation.LAST, Meter.Aggregation.LATEST):
        rows = events.values_list("customer_id", "meter_id").annotate(result=_SQL_AGGREGATES[aggregation]())
        return {(customer_id, meter_id): Decimal(result or 0) for customer_id, meter_id, result in rows.order_by()}
    # The last value: the latest timestamp per pair, then the value of that event
    # (the last one stored wins a tie).
    latest = events.values_list("customer_id", "meter_id").annotate(latest=Max("timestamp")).order_by()
    last_q = Q()
    for customer_id, meter_id, timestamp in latest:
        last_q |= Q(customer_id=customer_id, meter_id=meter_id, timestamp=timestamp)
    if not last_q:
        return {}
    values: dict[tuple[int, int], Decimal] = {}
    for customer_id, meter_id, value in (
        events.filter(last_q).order_by("pk").values_list("customer_id", "meter_id", "value")
    ):
        values[(customer_id, meter_id)] = Decimal(value)
    return values


def usage_aggregate(*, customer_id: int, meter: Meter, start: datetime, end: datetime) -> Decimal:
    """A customer's usage on `meter` over [start, end), aggregated as the meter says."""
    window = UsageWindow(customer_id=customer_id, meter_id=meter.pk, start=start, end=end)
    condition = _window_q(window, aggregation=meter.aggregation)
    return _aggregate_by_pair(condition, meter.aggregation).get((customer_id, meter.pk), Decimal(0))


def usage_aggregate_bulk(
    *, meter_ids: Iterable[int], customer_ids: Iterable[int], start: datetime, end: datetime
) -> dict[tuple[int, int], Decimal]:
    """Usage of every (customer, meter) pair over one shared window, keyed (customer_id, meter_id).

    One query per aggregation kind among the meters (two for `last`); pairs without
    events map to Decimal(0).
    """
    customer_ids = list(customer_ids)
    meters = Meter.objects.in_bulk(list(meter_ids))
    result = {(customer_id, meter_id): Decimal(0) for customer_id in customer_ids for meter_id in meters}
    by_kind: dict[str, list[int]] = defaultdict(list)
    for meter in meters.values():
        by_kind[meter.aggregation].append(meter.pk)
    for aggregation, ids in by_kind.items():
        condition = Q(customer_id__in=customer_ids, meter_id__in=ids, timestamp__lt=end, **_since(start, aggregation))
        result.update(_aggregate_by_pair(condition, aggregation))
    return result


def filtered_events(*, usage_filter: Mapping[str, Sequence[str]]) -> QuerySet[UsageEvent]:
    """Usage events whose properties match a price's filter (every key, one of its values)."""
    events = UsageEvent.objects.all()
    for position, (key, values) in enumerate(sorted(usage_filter.items())):
        # KeyTextTransform: the property name is data, never parsed as a lookup path.
        alias = f"dimension_{position}"
        events = events.alias(**{alias: KeyTextTransform(key, "properties")}).filter(**{f"{alias}__in": list(values)})
    return events


def _price_windows_usage(windows: Sequence[PriceUsageWindow]) -> dict[PriceUsageWindow, Decimal]:
    """Usage of prices that read their own events: one or two queries per window."""
    prices = Price.objects.select_related("meter").in_bulk({window.price_id for window in windows})
    result: dict[PriceUsageWindow, Decimal] = {}
    for window in windows:
        price = prices[window.price_id]
        meter = cast(Meter, price.meter)
        base = filtered_events(usage_filter=price.usage_filter or {})
        condition = _window_q(UsageWindow(*window[:4]), aggregation=meter.aggregation)
        if price.scheme == Price.Scheme.PERCENTAGE:
            values = base.filter(condition).order_by("timestamp", "pk").values_list("value", flat=True)
            result[window] = TransactionUsage.of([Decimal(value) for value in values])
            continue
        aggregated = _aggregate_by_pair(condition, meter.aggregation, base=base)
        result[window] = aggregated.get((window.customer_id, window.meter_id), Decimal(0))
    return result


def usage_aggregate_windows(
    *, windows: Iterable[UsageKey | tuple[int, int, datetime, datetime]], meters: Mapping[int, Meter] | None = None
) -> dict[UsageKey, Decimal]:
    """Usage for many (customer, meter, start, end) windows: periods may differ per subscription.

    Windows are answered WINDOWS_PER_QUERY at a time, one query per aggregation kind
    in each batch (two for `last`), so a chunk of 1,000 subscriptions on one meter
    costs about five queries. Windows without events map to Decimal(0).
    """
    price_windows: list[PriceUsageWindow] = []
    meter_windows: list[UsageWindow] = []
    for window in windows:
        if len(window) == 5:
            price_windows.append(PriceUsageWindow(*window))
        else:
            meter_windows.append(UsageWindow(*window))
    unique_windows = list(dict.fromkeys(meter_windows))
    if meters is None:
        meters = Meter.objects.in_bulk({window.meter_id for window in unique_windows})
    result: dict[UsageKey, Decimal] = dict.fromkeys(unique_windows, Decimal(0))
    if price_windows:
        for price_window, value in _price_windows_usage(list(dict.fromkeys(price_windows))).items():
            result[price_window] = value
    # A query groups by (customer, meter), so a batch may hold only one window per pair.
    rounds: list[list[UsageWindow]] = []
    occurrences: Counter[tuple[int, int]] = Counter()
    for window in unique_windows:
        pair = (window.customer_id, window.meter_id)
        if occurrences[pair] == len(rounds):
            rounds.append([])
        rounds[occurrences[pair]].append(window)
        occurrences[pair] += 1
    for round_windows in rounds:
        for offset in range(0, len(round_windows), WINDOWS_PER_QUERY):
            batch = round_windows[offset : offset + WINDOWS_PER_QUERY]
            by_kind: dict[str, list[UsageWindow]] = defaultdict(list)
            for window in batch:
                by_kind[meters[window.meter_id].aggregation].append(window)
            for aggregation, kind_windows in by_kind.items():
                # Windows of a billing-run chunk mostly share their period: one
                # `customer_id IN (...)` per (meter, start, end) keeps the SQL (and the
                # time Django spends building it) small.
                customers_by_span: dict[tuple[int, datetime, datetime], list[int]] = defaultdict(list)
                for window in kind_windows:
                    customers_by_span[(window.meter_id, window.start, window.end)].append(window.customer_id)
                condition = Q()
                for (meter_id, start, end), customer_ids in customers_by_span.items():
                    condition |= Q(
                        meter_id=meter_id, timestamp__lt=end, customer_id__in=customer_ids, **_since(start, aggregation)
                    )
                values = _aggregate_by_pair(condition, aggregation)
                for window in kind_windows:
                    result[window] = values.get((window.customer_id, window.meter_id), Decimal(0))
    return result


def usage_for_periods(*, wanted: Iterable[UsageKey | tuple[int, int, datetime, datetime]]) -> dict[UsageKey, Decimal]:
    """`usage_aggregate_windows` under the name the billing run uses: keys are
    (customer_id, meter_id, start, end), the `usage` argument of `renewal_draft`."""
    return usage_aggregate_windows(windows=wanted)


# -- pricing usage -----------------------------------------------------------------


def price_percentage_rule(price: Price) -> PercentageRule:
    return PercentageRule(
        rate=price.percentage_rate or Decimal(0),
        fixed_amount=price.fixed_amount,
        free_events=price.free_units,
        free_amount=price.free_amount,
        per_transaction_min=price.per_transaction_min_amount,
        per_transaction_max=price.per_transaction_max_amount,
    )


def usage_charge_amount(*, price: Price, quantity: Decimal) -> int:
    """What `quantity` units of metered usage cost at `price`, in minor units (pure).

    Per-unit prices charge fractional usage exactly (1.5 GB at 100 = 150); tiered and
    package prices count whole units, a started unit counting as one.
    """
    if quantity < 0:
        raise ValueError("usage cannot be negative")
    if price.scheme == Price.Scheme.PERCENTAGE:
        # A plain Decimal (no transactions known) counts as one transaction of that amount.
        transactions = quantity.transactions if isinstance(quantity, TransactionUsage) else (quantity,)
        return percentage_amount(transactions=transactions, rule=price_percentage_rule(price))
    if price.scheme == Price.Scheme.PER_UNIT:
        return round_fraction(Fraction(quantity) * Fraction(price.unit_amount or 0))
    return price_amount_for(price=price, quantity=math.ceil(quantity))
