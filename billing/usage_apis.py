"""/api/v1/meters, /api/v1/usage_thresholds and /api/v1/subscriptions/{id}/usage (issue 16).

Thin: each action validates its input and calls one service. Registered through
billing/apis.py's ROUTES.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.response import Response

from billing.models import Meter, UsageThreshold
from billing.services.catalog import meter_create, meter_update
from billing.services.usage import UsageEventInput, usage_events_record
from billing.services.usage_thresholds import (
    CurrentUsage,
    UsageThresholdError,
    subscription_current_usage,
    usage_threshold_create,
    usage_threshold_delete,
)
from billing.usage_serializers import (
    CurrentUsageSerializer,
    MeterCreateSerializer,
    MeterSerializer,
    MeterUpdateSerializer,
    UsageThresholdCreateSerializer,
    UsageThresholdSerializer,
)
from config.api.ids import InvalidPublicId, pk_from_public_id, public_id
from config.api.views import ApiViewSet
from customers.models import Customer

# Problem+json responses (400, 401, 403, 404, 429, and 422 for model rules) are added to every
# operation by the schema hook (config/api); only the success bodies are declared here.


METER_EXAMPLE = {
    "id": "mtr_7",
    "object": "meter",
    "key": "api_calls",
    "name": "API calls",
    "aggregation": "sum",
    "dimensions": ["region", "model"],
    "livemode": False,
    "created_at": "2026-01-01T00:00:00Z",
}


@extend_schema_view(
    list=extend_schema(summary="List meters", description="Meters of the calling key's mode, newest first."),
    retrieve=extend_schema(summary="Retrieve a meter", responses={200: MeterSerializer}),
)
class MeterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = MeterSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> Any:
        return Meter.objects.order_by("-pk")

    @extend_schema(
        summary="Create a meter",
        description=(
            "A meter aggregates the usage events reported under its `key` per billing period: `sum`, `max`, "
            "`last` (in the period), `latest` (the latest value ever, carried into periods without events: "
            "Stripe's `last_ever`) or `unique_count`. `dimensions` name the event properties prices may filter on."
        ),
        request=MeterCreateSerializer,
        responses={201: MeterSerializer},
        examples=[
            OpenApiExample(
                "Per-region API calls",
                request_only=True,
                value={"key": "api_calls", "name": "API calls", "aggregation": "sum", "dimensions": ["region"]},
            ),
            OpenApiExample("Meter", response_only=True, value=METER_EXAMPLE),
        ],
    )
    def create(self, request: Any) -> Response:
        serializer = MeterCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        meter = meter_create(data=dict(serializer.validated_data))
        return Response(MeterSerializer(meter).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Update a meter",
        description="Rename a meter or change its dimensions (a dimension a price filters on cannot be removed).",
        request=MeterUpdateSerializer,
        responses={200: MeterSerializer},
        examples=[OpenApiExample("Add a dimension", request_only=True, value={"dimensions": ["region", "model"]})],
    )
    def partial_update(self, request: Any, pk: str) -> Response:
        meter = self.get_object()
        serializer = MeterUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        meter = meter_update(meter=meter, changes=dict(serializer.validated_data))
        return Response(MeterSerializer(meter).data)


THRESHOLD_EXAMPLE = {
    "id": "uth_3",
    "object": "usage_threshold",
    "subscription": "sub_12",
    "kind": "amount",
    "amount": 5000,
    "meter": None,
    "units": None,
    "progressive_billing": True,
    "created_at": "2026-01-01T00:00:00Z",
}


@extend_schema_view(
    list=extend_schema(summary="List usage thresholds", description="Thresholds of the calling key's mode."),
    retrieve=extend_schema(summary="Retrieve a usage threshold", responses={200: UsageThresholdSerializer}),
)
class UsageThresholdViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = UsageThresholdSerializer
    bodyless_actions = ("destroy",)
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        return UsageThreshold.objects.order_by("-pk").select_related("subscription", "meter")

    @extend_schema(
        summary="Create a usage threshold",
        description=(
            "An alert on a subscription's usage in its current period: `amount` (cost of usage so far, minor "
            "units) or `units` of a `meter`. Reaching it emits `subscription.usage_threshold_reached` once per "
            "period; with `progressive_billing` the usage so far is also invoiced at once, and the period-end "
            "invoice subtracts it."
        ),
        request=UsageThresholdCreateSerializer,
        responses={201: UsageThresholdSerializer},
        examples=[
            OpenApiExample(
                "Invoice every 50 € of usage",
                request_only=True,
                value={"subscription": "sub_12", "amount": 5000, "progressive_billing": True},
            ),
            OpenApiExample("Usage threshold", response_only=True, value=THRESHOLD_EXAMPLE),
        ],
    )
    def create(self, request: Any) -> Response:
        serializer = UsageThresholdCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        threshold = usage_threshold_create(
            subscription=data["subscription"],
            amount=data.get("amount"),
            meter=data.get("meter"),
            units=data.get("units"),
            progressive_billing=data["progressive_billing"],
        )
        return Response(UsageThresholdSerializer(threshold).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Delete a usage threshold",
        description="The threshold stops watching; crossings already reported stay in the event log.",
        responses={204: None},
    )
    def destroy(self, request: Any, pk: str) -> Response:
        usage_threshold_delete(threshold=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def current_usage_data(usage: CurrentUsage) -> dict[str, Any]:
    """The body of GET /subscriptions/{id}/usage."""
    return {
        "object": "subscription_usage",
        "subscription": public_id(usage.subscription),
        "currency": usage.currency,
        "period_start": usage.period.start,
        "period_end": usage.period.end,
        "at": usage.at,
        "amount": usage.amount,
        "usage": [
            {
                "price": public_id(row.price),
                "meter": public_id(None, model=Meter, pk=row.price.meter_id),
                "description": row.label,
                "filter": row.usage_filter,
                "units": row.units,
                "amount": row.amount,
            }
            for row in usage.rows
        ],
        "thresholds": [
            {
                "threshold": public_id(state.threshold),
                "kind": state.threshold.kind,
                "target": state.target,
                "current": state.current,
                "progressive_billing": state.threshold.progressive_billing,
                "reached_at": state.reached_at,
            }
            for state in usage.thresholds
        ],
    }


CURRENT_USAGE_SCHEMA = extend_schema(
    summary="A subscription's usage so far",
    description=(
        "Units and cost (minor units, before discounts and tax) of each metered price in the current period, "
        "up to now (a test clock's time for its customers), and where each usage threshold stands."
    ),
    responses={200: CurrentUsageSerializer},
    examples=[
        OpenApiExample(
            "Usage so far",
            response_only=True,
            value={
                "object": "subscription_usage",
                "subscription": "sub_12",
                "currency": "EUR",
                "period_start": "2026-01-01T00:00:00Z",
                "period_end": "2026-02-01T00:00:00Z",
                "at": "2026-01-10T12:00:00Z",
                "amount": 4000,
                "usage": [
                    {
                        "price": "price_4",
                        "meter": "mtr_7",
                        "description": "API calls — region: eu (usage)",
                        "filter": {"region": ["eu"]},
                        "units": "400.000000",
                        "amount": 4000,
                    }
                ],
                "thresholds": [
                    {
                        "threshold": "uth_3",
                        "kind": "amount",
                        "target": "5000.000000",
                        "current": "4000.000000",
                        "progressive_billing": True,
                        "reached_at": None,
                    }
                ],
            },
        )
    ],
)


def subscription_usage_response(subscription: Any) -> Response:
    return Response(
        CurrentUsageSerializer(current_usage_data(subscription_current_usage(subscription=subscription))).data
    )


# -- POST /api/v1/usage_events (issue 20: ingestion speed) ----------------------------------

# The keys of one usage event (UsageEventInputSerializer's fields); others are refused per event.
USAGE_EVENT_KEYS = frozenset({"id", "customer", "meter", "timestamp", "value", "unique_value", "properties"})


def usage_inputs(raw_events: Sequence[Mapping[str, Any]]) -> tuple[list[UsageEventInput], list[int], list[dict]]:
    """Turn JSON events into service inputs; events that cannot even be parsed are reported here
    (with their position in the batch). The service checks the rest, event by event.

    One pass, no serializer per event: DRF's per-item field validation was most of the API's
    time on a batch of 1,000 (docs/usage-at-scale.md)."""
    inputs: list[UsageEventInput] = []
    positions: list[int] = []
    errors: list[dict] = []
    customer_ids: dict[object, int] = {}  # a batch names few customers: parse each public id once
    for index, raw in enumerate(raw_events):
        external_id = raw.get("id")
        shown_id = external_id if isinstance(external_id, str) else ""
        if not USAGE_EVENT_KEYS.issuperset(raw):
            unknown = sorted(str(key) for key in raw if key not in USAGE_EVENT_KEYS)
            message = gettext("Unknown parameter: %(name)s.") % {"name": unknown[0]}
            errors.append({"index": index, "id": shown_id, "code": "unknown_parameter", "message": message})
            continue
        customer = raw.get("customer")
        customer_id = customer_ids.get(customer) if isinstance(customer, str) else None
        if customer_id is None:
            try:
                customer_id = pk_from_public_id(customer, model=Customer)
            except InvalidPublicId as error:
                message = gettext("customer: %(error)s") % {"error": error}
                errors.append({"index": index, "id": shown_id, "code": "invalid_customer", "message": message})
                continue
            customer_ids[customer] = customer_id
        timestamp = raw.get("timestamp")
        try:
            parsed = parse_datetime(timestamp) if isinstance(timestamp, str) else None
        except ValueError:  # well formed but not a date (February 30th)
            parsed = None
        if parsed is None:
            message = gettext("timestamp: an ISO 8601 date-time with a UTC offset is required.")
            errors.append({"index": index, "id": shown_id, "code": "invalid_timestamp", "message": message})
            continue
        value = raw.get("value", 1)
        if isinstance(value, float):
            value = str(value)  # JSON numbers with a point: read them as written, never through binary floats
        if isinstance(value, str):
            try:
                value = Decimal(value)
            except InvalidOperation:
                message = gettext("value: not a number.")
                errors.append({"index": index, "id": shown_id, "code": "invalid_value", "message": message})
                continue
        unique_value = raw.get("unique_value", "")
        meter_key = raw.get("meter")
        inputs.append(
            UsageEventInput(
                customer_id=customer_id,
                meter_key=meter_key if isinstance(meter_key, str) else "",
                external_id=shown_id,
                timestamp=parsed,
                value=value,
                unique_value=unique_value if isinstance(unique_value, str) else str(unique_value),
                properties=raw.get("properties"),  # checked by the service (issue 16)
            )
        )
        positions.append(index)
    return inputs, positions, errors


def usage_batch_body(raw_events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Record a batch (its shape checked by UsageBatchSerializer) and answer what happened
    to each event: accepted, duplicates, and the errors by position in the batch."""
    inputs, positions, errors = usage_inputs(raw_events)
    result = usage_events_record(events=inputs)
    errors += [
        {"index": positions[error.index], "id": error.external_id, "code": error.code, "message": error.message}
        for error in result.errors
    ]
    errors.sort(key=lambda error: error["index"])
    return {"object": "usage_batch", "accepted": result.accepted, "duplicates": result.duplicates, "errors": errors}


USAGE_ROUTES = [
    ("meters", MeterViewSet, "meter"),
    ("usage_thresholds", UsageThresholdViewSet, "usage_threshold"),
]

__all__ = [
    "CURRENT_USAGE_SCHEMA",
    "USAGE_ROUTES",
    "UsageThresholdError",
    "subscription_usage_response",
    "usage_batch_body",
]
