"""Customers over the integrator API: thin views over customers.services."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db import transaction
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from config import clock
from config.api.authentication import acting_user, request_api_key
from config.api.exceptions import ApiError
from config.api.filters import UtcDateTimeFilter
from config.api.views import ApiViewSet
from config.models import ApiKey
from config.money import CurrencyError, validate_currency
from customers.models import Customer
from customers.serializers import CustomerSerializer
from customers.services import customer_create, customer_update
from invoices.models import BalanceTransaction
from invoices.serializers import BalanceAdjustInputSerializer, BalanceTransactionSerializer
from invoices.services.balance import balance_adjust


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
            gettext("Only sandbox keys (tk_test_…) can attach a customer to a test clock."),
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
    query_parameters = {"balance_transactions": ("cursor", "limit", "currency")}

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

    @extend_schema(
        methods=["GET"],
        summary="List a customer's balance transactions",
        description="The customer's credit balance ledger, newest first: manual adjustments, credit notes, "
        "unused-time credits, overpayments, and credit applied to invoices. Positive amounts are credit the "
        "customer holds; negative amounts use it. The balance in a currency is the sum of its transactions.",
        parameters=[OpenApiParameter("currency", str, description="Only this currency (either case), e.g. eur.")],
        responses={200: BalanceTransactionSerializer(many=True)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Adjust a customer's balance",
        description="Credit (positive amount) or debit (negative amount) the customer's balance in one currency, "
        "with a description shown to the customer. The next invoices in that currency use the credit "
        "automatically. A debit larger than the credit held is refused (409 insufficient_balance); the "
        "balance never goes negative. Records a `customer.balance_transaction.created` event.",
        request=BalanceAdjustInputSerializer,
        responses={201: BalanceTransactionSerializer},
        examples=[
            OpenApiExample(
                "Credit 10.00 EUR",
                request_only=True,
                value={"amount": 1000, "currency": "eur", "description": "Goodwill credit for the outage"},
            ),
            OpenApiExample(
                "The transaction",
                response_only=True,
                status_codes=["201"],
                value={
                    "id": "cbtxn_42",
                    "object": "customer_balance_transaction",
                    "customer": "cus_7",
                    "amount": 1000,
                    "currency": "EUR",
                    "kind": "adjustment",
                    "description": "Goodwill credit for the outage",
                    "invoice": None,
                    "credit_note": None,
                    "created_at": "2026-03-01T10:00:00Z",
                },
            ),
        ],
    )
    @action(detail=True, methods=["get", "post"], url_path="balance_transactions", filter_backends=[])
    def balance_transactions(self, request: Any, pk: str) -> Response:
        customer = self.get_object()
        if request.method == "POST":
            serializer = BalanceAdjustInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            with transaction.atomic():  # a refusal rolls back here, whatever transaction the request runs in
                entry = balance_adjust(
                    customer=customer,
                    currency=data["currency"],
                    amount=data["amount"],
                    description=data["description"],
                    at=clock.now(customer=customer),
                    acting_user=acting_user(request),
                )
            return Response(BalanceTransactionSerializer(entry).data, status=status.HTTP_201_CREATED)
        queryset = BalanceTransaction.objects.filter(customer=customer).order_by("-pk")
        currency = request.query_params.get("currency")
        if currency:
            try:
                queryset = queryset.filter(currency=validate_currency(currency))
            except CurrencyError as error:
                raise ApiError(
                    error.message_text(), code=CurrencyError.code, status_code=400, field="currency"
                ) from None
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(BalanceTransactionSerializer(page, many=True).data)


ROUTES = [("customers", CustomerViewSet, "customer")]
