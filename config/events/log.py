"""The domain event log (outbox): one row per state change, in the same transaction.

Consumers (webhooks, notifications, surveys, reports) read DomainEvent rows through
`config.events.consumers`; nothing here sends anything. A leaf module: it imports no
product app (an event's customer is reached through the foreign key, not an import).
Type names follow Stripe's (`invoice.finalized`, `customer.subscription.updated`) so
integrators recognise them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from config.bulk import copy_rows, copy_supported
from config.events.models import DomainEvent
from config.modes import default_livemode


@dataclass(frozen=True, slots=True)
class EventRow:
    type: str
    object_type: str
    object_id: str | int
    customer_id: int | None
    occurred_at: datetime
    data: Mapping[str, Any]
    acting_user_id: int | None = None
    # The customer's mode when the caller has the customer at hand (saves a query); else looked up.
    livemode: bool | None = None


def _json_safe(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(data), cls=DjangoJSONEncoder))


def _customer_model() -> Any:
    # The customer model through the event's foreign key: the leaf never imports `customers`.
    return DomainEvent._meta.get_field("customer").related_model


def _event_livemode(*, object_type: str, customer_id: int | None) -> bool:
    if customer_id is not None:
        mode = _customer_model().objects.filter(pk=customer_id).values_list("livemode", flat=True).first()
        if mode is not None:
            return mode
    if object_type == "test_clock":
        return False
    return default_livemode()


@transaction.atomic(savepoint=False)
def event_record(
    *,
    type: str,
    object_type: str,
    object_id: str | int,
    customer_id: int | None,
    occurred_at: datetime,
    data: Mapping[str, Any] | None = None,
    acting_user: Any = None,
    livemode: bool | None = None,
) -> DomainEvent:
    """One event. Its mode is its customer's; an event without a customer is in `livemode`
    (default: test for test clocks, else the running request's mode, else live)."""
    if livemode is None:
        livemode = _event_livemode(object_type=object_type, customer_id=customer_id)
    return DomainEvent.objects.create(
        livemode=livemode,
        type=type,
        object_type=object_type,
        object_id=str(object_id),
        customer_id=customer_id,
        data=_json_safe(data or {}),
        acting_user=acting_user if getattr(acting_user, "is_authenticated", False) else None,
        occurred_at=occurred_at,
    )


@transaction.atomic(savepoint=False)
def events_record_bulk(*, rows: Iterable[EventRow]) -> int:
    """Many events in one statement (the billing run writes one per invoice, usage ingestion
    one per customer and batch), each in its customer's mode."""
    rows = list(rows)
    customer_ids = {row.customer_id for row in rows if row.customer_id is not None and row.livemode is None}
    test_customers = (
        set(_customer_model().objects.filter(pk__in=customer_ids, livemode=False).values_list("pk", flat=True))
        if customer_ids
        else set()
    )

    def livemode(row: EventRow) -> bool:
        if row.livemode is not None:
            return row.livemode
        if row.customer_id is not None:
            return row.customer_id not in test_customers
        return _event_livemode(object_type=row.object_type, customer_id=None)

    if copy_supported():
        # COPY of plain tuples, the payload serialized once: no model instance and no JSON
        # round trip per event (a quarter of a usage batch's time went there).
        recorded = timezone.now()
        copy_rows(
            table=DomainEvent._meta.db_table,
            columns=_COPY_COLUMNS,
            rows=(
                (
                    row.type,
                    row.object_type,
                    str(row.object_id),
                    row.customer_id,
                    json.dumps(dict(row.data), cls=DjangoJSONEncoder),
                    row.acting_user_id,
                    row.occurred_at,
                    livemode(row),
                    recorded,
                )
                for row in rows
            ),
        )
        return len(rows)
    DomainEvent.objects.bulk_create(
        [
            DomainEvent(
                livemode=livemode(row),
                type=row.type,
                object_type=row.object_type,
                object_id=str(row.object_id),
                customer_id=row.customer_id,
                data=_json_safe(row.data),
                acting_user_id=row.acting_user_id,
                occurred_at=row.occurred_at,
            )
            for row in rows
        ],
        batch_size=2000,
    )
    return len(rows)


_COPY_COLUMNS = tuple(
    DomainEvent._meta.get_field(name).column
    for name in (
        "type",
        "object_type",
        "object_id",
        "customer",
        "data",
        "acting_user",
        "occurred_at",
        "livemode",
        "created_at",
    )
)


@dataclass(frozen=True, slots=True)
class EventAmendment:
    """Top-level keys to set in the payload of an object's events of `types`, and their time."""

    object_id: str
    types: tuple[str, ...]
    data: Mapping[str, str | int | None]
    occurred_at: datetime


_AMEND_SQL = """
UPDATE billing_domainevent AS event
SET data = event.data || amended.data, occurred_at = amended.occurred_at
FROM unnest(%s::text[], %s::text[], %s::jsonb[], %s::timestamptz[]) AS amended(object_id, type, data, occurred_at)
WHERE event.object_type = %s AND event.object_id = amended.object_id AND event.type = amended.type
"""


@transaction.atomic(savepoint=False)
def events_amend_bulk(*, object_type: str, amendments: Iterable[EventAmendment]) -> int:
    """Complete events recorded earlier in this transaction (one UPDATE): the bulk invoice
    issue records its events before the invoices are numbered, and sets their number here.
    Only for events the current transaction wrote: a consumer may have read committed ones."""
    rows = [(amendment, event_type) for amendment in amendments for event_type in amendment.types]
    if not rows:
        return 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _AMEND_SQL,
                [
                    [amendment.object_id for amendment, _ in rows],
                    [event_type for _, event_type in rows],
                    [json.dumps(_json_safe(amendment.data)) for amendment, _ in rows],
                    [amendment.occurred_at for amendment, _ in rows],
                    object_type,
                ],
            )
            return cursor.rowcount
    amended = 0
    for amendment, event_type in rows:
        for event in DomainEvent.objects.filter(
            object_type=object_type, object_id=amendment.object_id, type=event_type
        ):
            event.data = {**event.data, **_json_safe(amendment.data)}
            event.occurred_at = amendment.occurred_at
            event.save(update_fields=["data", "occurred_at"])
            amended += 1
    return amended
