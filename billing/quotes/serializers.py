"""The API's shapes of quotes (read) and of a new quote (StrictSerializer: unknown keys refused)."""

from __future__ import annotations

from rest_framework import serializers

from billing.models import Coupon, Price, Subscription
from billing.quotes.models import Quote, QuoteLine
from config.api.serializers import (
    ObjectField,
    PublicIdField,
    PublicIdRelatedField,
    StrictModelSerializer,
    StrictSerializer,
)
from customers.models import Customer
from invoices.models import Invoice


class QuoteLineSerializer(serializers.ModelSerializer):
    price = PublicIdRelatedField(model=Price, read_only=True)

    class Meta:
        model = QuoteLine
        fields = ("price", "quantity", "description", "unit_amount")
        read_only_fields = fields


class QuoteSerializer(StrictModelSerializer):
    id = PublicIdField()
    object = ObjectField("quote")
    customer = PublicIdRelatedField(model=Customer, read_only=True)
    coupon = PublicIdRelatedField(model=Coupon, read_only=True)
    revises = PublicIdRelatedField(model=Quote, read_only=True)
    subscription = PublicIdRelatedField(model=Subscription, read_only=True)
    invoice = PublicIdRelatedField(model=Invoice, read_only=True)
    lines = QuoteLineSerializer(many=True, read_only=True)
    livemode = serializers.BooleanField(source="customer.livemode", read_only=True)

    class Meta:
        model = Quote
        fields = (
            "id",
            "object",
            "number",
            "status",
            "customer",
            "currency",
            "revision",
            "revises",
            "lines",
            "coupon",
            "trial_days",
            "collection_method",
            "days_until_due",
            "valid_until",
            "header",
            "footer",
            "terms",
            "subtotal",
            "discount_total",
            "tax_total",
            "total",
            "recurring_total",
            "finalized_at",
            "sent_at",
            "accepted_at",
            "accepted_name",
            "canceled_at",
            "cancel_reason",
            "expired_at",
            "subscription",
            "invoice",
            "livemode",
            "created_at",
        )
        read_only_fields = fields


class QuoteLineInputSerializer(StrictSerializer):
    price = PublicIdRelatedField(queryset=Price.objects.all(), required=False, allow_null=True)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    unit_amount = serializers.IntegerField(min_value=1, max_value=10**12, required=False, allow_null=True)


class QuoteCreateSerializer(StrictSerializer):
    customer = PublicIdRelatedField(queryset=Customer.objects.all())
    lines = QuoteLineInputSerializer(many=True, allow_empty=False, max_length=50)
    coupon = PublicIdRelatedField(queryset=Coupon.objects.all(), required=False, allow_null=True)
    trial_days = serializers.IntegerField(min_value=0, max_value=730, default=0)
    collection_method = serializers.ChoiceField(
        choices=Quote.CollectionMethod.choices, default=Quote.CollectionMethod.SEND_INVOICE
    )
    days_until_due = serializers.IntegerField(min_value=0, max_value=365, required=False, allow_null=True)
    valid_until = serializers.DateTimeField(required=False, allow_null=True)
    header = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    footer = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    terms = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
