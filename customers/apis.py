"""Customers over the integrator API: thin views over customers.services."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.response import Response

from config.api.authentication import acting_user, request_api_key
from config.api.exceptions import ApiError
from config.api.filters import UtcDateTimeFilter
from config.api.views import ApiViewSet
from config.models import ApiKey
from customers.models import Customer
from customers.serializers import CustomerSerializer
from customers.services import customer_create, customer_update


class CustomerFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(lookup_expr="iexact")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Customer
        fields = ("email", "currency", "country")


def _check_test_clock(request: Any, data: dict) -> None:
    key = request_api_key(request)
    if data.get("test_clock") is not None and key is not None and key.mode != ApiKey.Mode.TEST:
        raise ApiError(
            "Only sandbox keys (tk_test_…) can attach a customer to a test clock.",
            code="sandbox_only",
            status_code=403,
            field="test_clock",
        )


@extend_schema_view(
    list=extend_schema(summary="List customers"),
    retrieve=extend_schema(summary="Retrieve a customer"),
    create=extend_schema(summary="Create a customer"),
    partial_update=extend_schema(summary="Update a customer"),
)
class CustomerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Customer.objects.order_by("-pk")
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def create(self, request: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _check_test_clock(request, serializer.validated_data)
        customer = customer_create(data=serializer.validated_data, acting_user=acting_user(request))
        return Response(self.get_serializer(customer).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Any, pk: str) -> Response:
        customer = self.get_object()
        serializer = self.get_serializer(customer, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        _check_test_clock(request, serializer.validated_data)
        customer = customer_update(customer=customer, data=serializer.validated_data, acting_user=acting_user(request))
        return Response(self.get_serializer(customer).data)


ROUTES = [("customers", CustomerViewSet, "customer")]
