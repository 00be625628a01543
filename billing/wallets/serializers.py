"""API shapes of the prepaid credits (/api/v1/credit_grants, /api/v1/wallets)."""

from __future__ import annotations

from typing import Any

from django.db.models import Sum
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.limits import MAX_AMOUNT
from billing.models import Price, Product
from billing.wallets.models import CreditGrant, Wallet, WalletTransaction
from config.api.ids import public_id
from config.api.serializers import (
    CURRENCY_FIELD_KWARGS,
    MetadataField,
    ObjectField,
    PublicIdField,
    PublicIdRelatedField,
    StrictSerializer,
)
from customers.models import Customer
from invoices.models import Invoice


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class _PublicIds(serializers.Field):
    def __init__(self, model: Any, **kwargs: Any) -> None:
        self.model = model
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> list[str]:
        return [public_id(None, model=self.model, pk=pk) or "" for pk in value or []]


class CreditGrantSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("credit_grant")
    customer = PublicIdRelatedField(model=Customer, read_only=True)
    purchase_invoice = PublicIdRelatedField(model=Invoice, read_only=True)
    prices = _PublicIds(Price, source="price_ids", read_only=True)
    products = _PublicIds(Product, source="product_ids", read_only=True)

    class Meta:
        model = CreditGrant
        fields = (
            "id",
            "object",
            "customer",
            "currency",
            "name",
            "category",
            "status",
            "amount",
            "remaining",
            "priority",
            "effective_at",
            "expires_at",
            "applies_to",
            "prices",
            "products",
            "purchase_invoice",
            "automatic_top_up",
            "reason",
            "metadata",
            "voided_at",
            "created_at",
        )
        read_only_fields = fields


class CreditGrantCreateSerializer(StrictSerializer):
    customer = PublicIdRelatedField(queryset=Customer.objects.select_related("test_clock"))
    amount = serializers.IntegerField(min_value=1, max_value=MAX_AMOUNT, help_text="Minor units.")
    currency = serializers.CharField(**CURRENCY_FIELD_KWARGS)
    category = serializers.ChoiceField(choices=CreditGrant.Category.choices, default=CreditGrant.Category.PROMOTIONAL)
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    priority = serializers.IntegerField(min_value=0, max_value=100, default=50)
    effective_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    applies_to = serializers.ChoiceField(choices=CreditGrant.AppliesTo.choices, default=CreditGrant.AppliesTo.ALL)
    prices = serializers.ListField(
        child=PublicIdRelatedField(queryset=Price.objects.all()), required=False, default=list, max_length=100
    )
    products = serializers.ListField(
        child=PublicIdRelatedField(queryset=Product.objects.all()), required=False, default=list, max_length=100
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    metadata = MetadataField(required=False, default=dict)

    def validate_currency(self, value: str) -> str:
        return value.upper()


class CreditGrantVoidSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


class WalletSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("wallet")
    customer = PublicIdRelatedField(model=Customer, read_only=True)
    balance = serializers.SerializerMethodField(help_text="Credits available now and later (active grants).")
    pending = serializers.SerializerMethodField(help_text="Paid credits awaiting their purchase invoice's payment.")

    class Meta:
        model = Wallet
        fields = (
            "id",
            "object",
            "customer",
            "currency",
            "balance",
            "pending",
            "low_balance_threshold",
            "top_up_threshold",
            "top_up_amount",
            "created_at",
        )
        read_only_fields = fields

    def _sum(self, wallet: Wallet, *, status: str, field: str) -> int:
        total = wallet.grants.filter(status=status).aggregate(total=Sum(field))["total"]
        return int(total or 0)

    @extend_schema_field(OpenApiTypes.INT)
    def get_balance(self, wallet: Wallet) -> int:
        return self._sum(wallet, status=CreditGrant.Status.ACTIVE, field="remaining")

    @extend_schema_field(OpenApiTypes.INT)
    def get_pending(self, wallet: Wallet) -> int:
        return self._sum(wallet, status=CreditGrant.Status.PENDING, field="amount")


class WalletConfigureSerializer(StrictSerializer):
    customer = PublicIdRelatedField(queryset=Customer.objects.select_related("test_clock"))
    currency = serializers.CharField(**CURRENCY_FIELD_KWARGS)
    low_balance_threshold = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=MAX_AMOUNT
    )
    top_up_threshold = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=MAX_AMOUNT
    )
    top_up_amount = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=MAX_AMOUNT
    )

    def validate_currency(self, value: str) -> str:
        return value.upper()


class WalletTransactionSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("wallet_transaction")
    wallet = PublicIdRelatedField(model=Wallet, read_only=True)
    grant = PublicIdRelatedField(model=CreditGrant, read_only=True)
    invoice = PublicIdRelatedField(model=Invoice, read_only=True)

    class Meta:
        model = WalletTransaction
        fields = ("id", "object", "wallet", "grant", "kind", "amount", "invoice", "created_at")
        read_only_fields = fields
