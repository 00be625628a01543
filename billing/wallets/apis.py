"""Prepaid credits in the integrator API: /api/v1/credit_grants, /api/v1/wallets, /api/v1/wallet_transactions.

Stripe's credit grants (`POST /v1/billing/credit_grants`, `.../void`, the credit balance
summary) map onto these; see docs/api.md "Prepaid credits". Each write is one service call.
"""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.wallets.models import CreditGrant, Wallet, WalletTransaction
from billing.wallets.serializers import (
    CreditGrantCreateSerializer,
    CreditGrantSerializer,
    CreditGrantVoidSerializer,
    WalletConfigureSerializer,
    WalletSerializer,
    WalletTransactionSerializer,
)
from billing.wallets.services import GrantRequest, credit_grant_create, credit_grant_void, wallet_configure
from config.api.authentication import acting_user
from config.api.filters import invalid_id_in_filter
from config.api.ids import InvalidPublicId, pk_from_public_id
from config.api.views import ApiViewSet, ReadOnlyApiViewSet
from customers.models import Customer


def _customer_filter(field_name: str = "customer") -> django_filters.Filter:
    def method(queryset: Any, name: str, value: str) -> Any:
        try:
            return queryset.filter(**{f"{field_name}_id": pk_from_public_id(value, model=Customer)})
        except InvalidPublicId as error:
            raise invalid_id_in_filter(name, error) from None

    return django_filters.CharFilter(method=method)


class CreditGrantFilter(django_filters.FilterSet):
    customer = _customer_filter()

    class Meta:
        model = CreditGrant
        fields = ("status", "category", "currency")


GRANT_EXAMPLE = {
    "customer": "cus_42",
    "amount": 5000,
    "currency": "EUR",
    "category": "promotional",
    "name": "Welcome credits",
    "expires_at": "2027-01-01T00:00:00Z",
    "applies_to": "usage",
}


@extend_schema_view(
    list=extend_schema(summary="List credit grants", description="Newest first; filter by customer, status."),
    retrieve=extend_schema(summary="Retrieve a credit grant"),
)
class CreditGrantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = CreditGrantSerializer
    filterset_class = CreditGrantFilter

    def get_queryset(self) -> Any:
        return CreditGrant.objects.order_by("-pk")

    @extend_schema(
        summary="Grant prepaid credits",
        description=(
            "Promotional credits are available at once. Paid credits issue a purchase invoice for the "
            "amount (collected like any invoice); they become available when it is paid. Credits pay "
            "eligible invoice lines at finalization, before the customer balance "
            "(docs/billing.md, Prepaid credits). Errors: 400 validation_error or unknown_parameter, "
            "404 for another mode's customer, 409 wallet_currency, 422 wallet_refused."
        ),
        request=CreditGrantCreateSerializer,
        responses={201: CreditGrantSerializer},
        examples=[OpenApiExample("Promotional usage credits", value=GRANT_EXAMPLE, request_only=True)],
    )
    def create(self, request: Any) -> Response:
        serializer = CreditGrantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        grant = credit_grant_create(
            customer=data["customer"],
            request=GrantRequest(
                amount=data["amount"],
                currency=data["currency"],
                category=data["category"],
                name=data["name"],
                priority=data["priority"],
                effective_at=data["effective_at"],
                expires_at=data["expires_at"],
                applies_to=data["applies_to"],
                price_ids=[price.pk for price in data["prices"]],
                product_ids=[product.pk for product in data["products"]],
                reason=data["reason"],
                metadata=data["metadata"],
            ),
            acting_user=acting_user(request),
        )
        return Response(CreditGrantSerializer(grant).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Void a credit grant",
        description="What remains of the grant is lost (a `void` ledger row). Errors: 409 credit_grant_conflict "
        "when the grant is already expired or voided.",
        request=CreditGrantVoidSerializer,
        responses={200: CreditGrantSerializer},
        examples=[OpenApiExample("Void", value={"reason": "granted by mistake"}, request_only=True)],
    )
    @action(detail=True, methods=["post"])
    def void(self, request: Any, pk: str | None = None) -> Response:
        grant = self.get_object()
        serializer = CreditGrantVoidSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grant = credit_grant_void(
            grant=grant, reason=serializer.validated_data["reason"], acting_user=acting_user(request)
        )
        return Response(CreditGrantSerializer(grant).data)


class WalletFilter(django_filters.FilterSet):
    customer = _customer_filter()

    class Meta:
        model = Wallet
        fields = ("currency",)


@extend_schema_view(
    list=extend_schema(summary="List wallets", description="A customer's balance summary: `?customer=cus_42`."),
    retrieve=extend_schema(summary="Retrieve a wallet (balance summary)"),
)
class WalletViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = WalletSerializer
    filterset_class = WalletFilter

    def get_queryset(self) -> Any:
        return Wallet.objects.order_by("-pk")

    @extend_schema(
        summary="Configure a customer's wallet",
        description="Creates the wallet on first use. `low_balance_threshold`: record "
        "`customer.wallet.balance_low` when the balance crosses under it; `top_up_threshold` and "
        "`top_up_amount`: buy paid credits automatically (once per crossing). null switches a rule off.",
        request=WalletConfigureSerializer,
        responses={200: WalletSerializer},
        examples=[
            OpenApiExample(
                "Top up 100.00 under 20.00",
                value={"customer": "cus_42", "currency": "EUR", "top_up_threshold": 2000, "top_up_amount": 10000},
                request_only=True,
            )
        ],
    )
    def create(self, request: Any) -> Response:
        serializer = WalletConfigureSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        wallet = wallet_configure(
            customer=data["customer"],
            currency=data["currency"],
            low_balance_threshold=data["low_balance_threshold"],
            top_up_threshold=data["top_up_threshold"],
            top_up_amount=data["top_up_amount"],
            acting_user=acting_user(request),
        )
        return Response(WalletSerializer(wallet).data)


class WalletTransactionFilter(django_filters.FilterSet):
    customer = _customer_filter("wallet__customer")

    class Meta:
        model = WalletTransaction
        fields = ("kind",)


@extend_schema_view(
    list=extend_schema(summary="List wallet transactions", description="The ledger: grants, consumption, expiry."),
    retrieve=extend_schema(summary="Retrieve a wallet transaction"),
)
class WalletTransactionViewSet(ReadOnlyApiViewSet):
    serializer_class = WalletTransactionSerializer
    filterset_class = WalletTransactionFilter

    def get_queryset(self) -> Any:
        return WalletTransaction.objects.order_by("-pk")


ROUTES = [
    ("credit_grants", CreditGrantViewSet, "credit_grant"),
    ("wallets", WalletViewSet, "wallet"),
    ("wallet_transactions", WalletTransactionViewSet, "wallet_transaction"),
]
