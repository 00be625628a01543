"""`POST /api/v1/feature_events`: an integrator reports that a customer used a feature.

Surveys waiting for that feature (trigger "after a feature event") invite the customer;
the event itself is a domain event like any other (readable at /api/v1/events).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from config.api.exceptions import ApiError
from config.api.ids import public_id
from config.api.serializers import PublicIdRelatedField, StrictSerializer
from config.api.views import ApiViewSet
from customers.models import Customer
from feedback.errors import FeedbackError
from feedback.services.triggers import feedback_feature_event_record


class FeatureEventInputSerializer(StrictSerializer):
    customer = PublicIdRelatedField(model=Customer, queryset=Customer.objects.all())
    feature = serializers.CharField(max_length=100, help_text=_("Letters, digits, dots, dashes or underscores."))
    occurred_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text=_("When it happened (ISO 8601 with a time zone); default: now.")
    )


class FeatureEventSerializer(serializers.Serializer):
    object = serializers.CharField(default="feature_event")
    event = serializers.CharField(help_text=_("The domain event's id (evt_…)."))
    customer = serializers.CharField()
    feature = serializers.CharField()
    occurred_at = serializers.DateTimeField()


class FeatureEventViewSet(ApiViewSet):
    """Feature usage reported by the integrator (feeds feedback survey triggers)."""

    serializer_class = FeatureEventInputSerializer

    @extend_schema(
        request=FeatureEventInputSerializer,
        responses={201: FeatureEventSerializer},
        summary="Report that a customer used a feature (may trigger a feedback survey)",
    )
    def create(self, request: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            event = feedback_feature_event_record(
                customer=data["customer"], feature=data["feature"], at=data.get("occurred_at")
            )
        except FeedbackError as error:
            raise ApiError(str(error), code="invalid_feature_event", status_code=422, field="feature") from error
        body = {
            "object": "feature_event",
            "event": public_id(event),
            "customer": public_id(data["customer"]),
            "feature": data["feature"],
            "occurred_at": event.occurred_at,
        }
        return Response(FeatureEventSerializer(body).data, status=status.HTTP_201_CREATED)


ROUTES = [("feature_events", FeatureEventViewSet, "feature_event")]
