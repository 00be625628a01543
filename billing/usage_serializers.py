"""Meters, usage thresholds and current usage as the integrator API shows and accepts them
(issue 16: items 8, 9 and 13's meters). Validation of types only; rules live in the services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from billing.limits import MAX_AMOUNT, MAX_USAGE_VALUE
from billing.models import Meter, Subscription, UsageThreshold
from config.api.serializers import (
    ObjectField,
    PublicIdField,
    PublicIdRelatedField,
    StrictModelSerializer,
    StrictSerializer,
)


class MeterSerializer(StrictModelSerializer):
    id = PublicIdField()
    object = ObjectField("meter")
    dimensions = serializers.ListField(child=serializers.CharField(max_length=40), required=False)

    class Meta:
        model = Meter
        fields = ("id", "object", "key", "name", "aggregation", "dimensions", "livemode", "created_at")
        read_only_fields = fields


class MeterCreateSerializer(StrictSerializer):
    key = serializers.SlugField(max_length=100, help_text="The event name usage events are reported under.")
    name = serializers.CharField(max_length=200)
    aggregation = serializers.ChoiceField(choices=Meter.Aggregation.choices)
    dimensions = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        max_length=10,
        help_text='Event properties prices may filter on, e.g. ["region", "model"].',
    )


class MeterUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    dimensions = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=10)


class UsageThresholdSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("usage_threshold")
    subscription = PublicIdRelatedField(model=Subscription, read_only=True)
    meter = PublicIdRelatedField(model=Meter, read_only=True)

    class Meta:
        model = UsageThreshold
        fields = (
            "id",
            "object",
            "subscription",
            "kind",
            "amount",
            "meter",
            "units",
            "progressive_billing",
            "created_at",
        )
        read_only_fields = fields


class UsageThresholdCreateSerializer(StrictSerializer):
    subscription = PublicIdRelatedField(queryset=Subscription.objects.all())
    amount = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_AMOUNT, help_text="Cost of usage so far, in minor units."
    )
    meter = PublicIdRelatedField(queryset=Meter.objects.all(), required=False)
    units = serializers.DecimalField(
        max_digits=20, decimal_places=6, required=False, min_value=0, max_value=MAX_USAGE_VALUE
    )
    progressive_billing = serializers.BooleanField(required=False, default=False)


class UsageRowSerializer(serializers.Serializer):
    price = serializers.CharField()
    meter = serializers.CharField()
    description = serializers.CharField()
    filter = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    units = serializers.DecimalField(max_digits=26, decimal_places=6)
    amount = serializers.IntegerField(help_text="Minor units, before discounts and tax.")


class ThresholdStateSerializer(serializers.Serializer):
    threshold = serializers.CharField()
    kind = serializers.CharField()
    target = serializers.DecimalField(max_digits=26, decimal_places=6)
    current = serializers.DecimalField(max_digits=26, decimal_places=6)
    progressive_billing = serializers.BooleanField()
    reached_at = serializers.DateTimeField(allow_null=True)


class CurrentUsageSerializer(serializers.Serializer):
    object = serializers.CharField()
    subscription = serializers.CharField()
    currency = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    at = serializers.DateTimeField()
    amount = serializers.IntegerField(help_text="Cost of usage so far, minor units, before discounts and tax.")
    usage = UsageRowSerializer(many=True)
    thresholds = ThresholdStateSerializer(many=True)


class UsageEventListField(serializers.ListField):
    """A list of event objects, checked for shape only: each item must be an object.

    DRF's `ListField(child=DictField())` validates every key of every event through a child
    field (seven `run_validation` calls per event, most of the API's time on a batch of 1,000).
    This field keeps its declared child (for the schema) and its errors: the same codes and
    messages, keyed by the event's position (`events[3]`), then the list's own validators
    (`max_length`), in DRF's order. What an event holds is checked per event afterwards
    (billing.usage_apis.usage_inputs, then the service), so one bad event never fails a batch.
    """

    def run_child_validation(self, data: Any) -> list[dict]:
        errors: dict[str, list[ErrorDetail]] = {}  # keyed by position, as DRF's ListField
        messages = self.child.error_messages
        for index, item in enumerate(data):
            if type(item) is dict:  # JSON objects parse as plain dicts: the fast path
                continue
            if item is None:
                errors[str(index)] = [ErrorDetail(str(messages["null"]), code="null")]
            elif not isinstance(item, dict):
                message = str(messages["not_a_dict"]).format(input_type=type(item).__name__)
                errors[str(index)] = [ErrorDetail(message, code="not_a_dict")]
        if errors:
            raise serializers.ValidationError(errors)
        return list(data)
