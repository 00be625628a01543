"""API shapes of checkout sessions (Stripe's Checkout Session object, trimmed to what Tarif does)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.checkout.models import CheckoutSession, CheckoutSessionLineItem
from billing.checkout.selectors import checkout_session_url
from billing.limits import MAX_QUANTITY
from billing.models import Coupon, PaymentMethod, Price, Subscription
from config.api.serializers import MetadataField, ObjectField, PublicIdRelatedField, StrictSerializer
from customers.models import Customer
from invoices.models import Brand, Invoice


class LineItemInputSerializer(StrictSerializer):
    price = PublicIdRelatedField(queryset=Price.objects.select_related("product"), help_text="A price id (price_…).")
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1)


class CheckoutSessionInputSerializer(StrictSerializer):
    mode = serializers.ChoiceField(choices=CheckoutSession.Mode.choices)
    line_items = LineItemInputSerializer(many=True, required=False, default=list, max_length=20)
    success_url = serializers.CharField(
        max_length=2000, help_text="Absolute URL; `{CHECKOUT_SESSION_ID}` is replaced by the session's id."
    )
    cancel_url = serializers.CharField(max_length=2000)
    customer = PublicIdRelatedField(queryset=Customer.objects.all(), required=False, allow_null=True)
    customer_email = serializers.EmailField(required=False, allow_blank=True, default="")
    trial_period_days = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    coupon = PublicIdRelatedField(queryset=Coupon.objects.all(), required=False, allow_null=True)
    allow_promotion_codes = serializers.BooleanField(required=False, default=False)
    tax_id_collection = serializers.BooleanField(required=False, default=True)
    billing_address_collection = serializers.ChoiceField(
        choices=CheckoutSession.AddressCollection.choices, required=False, default="auto"
    )
    brand = PublicIdRelatedField(
        queryset=Brand.objects.all(), required=False, allow_null=True, help_text="Default: the default brand."
    )
    metadata = MetadataField(required=False, default=dict)
    payment_method_types = serializers.ListField(
        child=serializers.ChoiceField(choices=CheckoutSession.PaymentMethodType.choices),
        required=False,
        min_length=1,
        max_length=3,
        help_text=(
            "What the page offers: `card`, `sepa_debit` (euro amounts), `bank_transfer` (not in setup mode; "
            "the brand needs bank details: invoices are then sent and wait for the transfer). "
            "Default: `TARIF_CHECKOUT_PAYMENT_METHOD_TYPES` less what the session cannot take."
        ),
    )


class LineItemSerializer(serializers.ModelSerializer):
    object = ObjectField("item")
    price = PublicIdRelatedField(model=Price, read_only=True)

    class Meta:
        model = CheckoutSessionLineItem
        fields = ("object", "price", "quantity")


class CheckoutSessionSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    object = ObjectField("checkout.session")
    url = serializers.SerializerMethodField()
    line_items = LineItemSerializer(many=True, read_only=True)
    brand = PublicIdRelatedField(model=Brand, read_only=True)
    customer = PublicIdRelatedField(model=Customer, read_only=True)
    coupon = PublicIdRelatedField(model=Coupon, read_only=True)
    subscription = PublicIdRelatedField(model=Subscription, read_only=True)
    invoice = PublicIdRelatedField(model=Invoice, read_only=True)
    payment_method = PublicIdRelatedField(model=PaymentMethod, read_only=True)

    class Meta:
        model = CheckoutSession
        fields = (
            "id",
            "object",
            "url",
            "livemode",
            "mode",
            "status",
            "brand",
            "currency",
            "line_items",
            "amount_subtotal",
            "amount_tax",
            "amount_total",
            "customer",
            "customer_email",
            "trial_period_days",
            "coupon",
            "allow_promotion_codes",
            "tax_id_collection",
            "billing_address_collection",
            "success_url",
            "cancel_url",
            "origin",
            "origin_id",
            "payment_method_types",
            "payment_method_type",
            "subscription",
            "invoice",
            "payment_method",
            "metadata",
            "expires_at",
            "completed_at",
            "created_at",
        )
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, session: CheckoutSession) -> str | None:
        """The hosted page, while the session is open (null once complete or expired, as Stripe)."""
        return checkout_session_url(session) if session.status == CheckoutSession.Status.OPEN else None
