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
from django.db import transaction

from config.bulk import copy_insert, copy_supported
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
    """Many events in one INSERT (the billing run writes one per invoice), each in its customer's mode."""
    rows = list(rows)
    customer_ids = {row.customer_id for row in rows if row.customer_id is not None and row.livemode is None}
    test_customers = (
        set(_customer_model().objects.filter(pk__in=customer_ids, livemode=False).values_list("pk", flat=True))
        if customer_ids
        else set()
    )
    objects = [
        DomainEvent(
            livemode=row.livemode
            if row.livemode is not None
            else row.customer_id not in test_customers
            if row.customer_id is not None
            else _event_livemode(object_type=row.object_type, customer_id=None),
            type=row.type,
            object_type=row.object_type,
            object_id=str(row.object_id),
            customer_id=row.customer_id,
            data=_json_safe(row.data),
            acting_user_id=row.acting_user_id,
            occurred_at=row.occurred_at,
        )
        for row in rows
    ]
    if copy_supported():
        # COPY: the billing run writes one event per invoice, thousands per second.
        copy_insert(model=DomainEvent, objs=objects, with_pk=False)
    else:
        DomainEvent.objects.bulk_create(objects, batch_size=2000)
    return len(objects)
