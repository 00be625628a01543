"""Billing resources as the integrator API shows and accepts them. Validation of types only:
business rules stay in billing/services (their errors become problem+json in one handler)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.limits import MAX_AMOUNT, MAX_QUANTITY, MAX_TOTAL
from billing.models import (
    Coupon,
    InvoiceItem,
    Meter,
    Payment,
    PaymentMethod,
    Price,
    Product,
    PromotionCode,
    Refund,
    Subscription,
    SubscriptionItem,
    TestClock,
    UsageEvent,
    WebhookEndpoint,
)
from billing.pricing import INFINITE_UP_TO
from billing.services.usage import MAX_BATCH_SIZE
from billing.update_serializers import PendingUpdateField
from billing.usage_serializers import UsageEventListField
from config.api.ids import PREFIXES
from config.api.serializers import (
    CurrencyField,
    ExpandableMixin,
    MetadataField,
    ObjectField,
    PublicIdField,
    PublicIdRelatedField,
    StrictModelSerializer,
    StrictSerializer,
)
from config.events.models import DomainEvent
from customers.models import Customer
from invoices.models import CreditNote, Invoice, TaxCode
from invoices.serializers import InvoicePreviewSerializer

PRORATION_CHOICES = ["create_prorations", "always_invoice", "none"]


class TaxCodeReferenceField(PublicIdRelatedField):
    """Issue 16 item 11: a tax code by its id (`txcd_3`) or its code (`reduced`); shown as its id.
    Tax codes are global data (no mode)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and not data.startswith("txcd_"):
            code = TaxCode.objects.filter(code=data, active=True).first()
            if code is None:
                raise serializers.ValidationError(
                    self.error_messages["does_not_exist"] % {"value": data}, code="resource_missing"
                )
            return code
        return super().to_internal_value(data)


def tax_code_field(help_text: str) -> TaxCodeReferenceField:
    return TaxCodeReferenceField(
        queryset=TaxCode.objects.filter(active=True), required=False, allow_null=True, help_text=help_text
    )


class TiersField(serializers.ListField):
    """Price tiers; the open last tier may be written `"up_to": "inf"` (as Stripe does): it is
    stored and returned as `null`. Each tier's other checks are the pricing rules' (billing.pricing)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", serializers.DictField())
        kwargs.setdefault(
            "help_text",
            '[{"up_to": 10, "unit_amount": 500, "flat_amount": 0}, {"up_to": "inf", "unit_amount": 400}]: '
            'the last tier\'s up_to is null or "inf" (returned as null).',
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[dict]:
        tiers = super().to_internal_value(data)
        return [
            {**tier, "up_to": None} if isinstance(tier, dict) and tier.get("up_to") == INFINITE_UP_TO else tier
            for tier in tiers
        ]


class ProductSerializer(StrictModelSerializer):
    id = PublicIdField()
    object = ObjectField("product")
    metadata = MetadataField(required=False)
    tax_code = tax_code_field("Tax code (`txcd_…` or its code); null: the brand's default, else the standard rate.")

    class Meta:
        model = Product
        fields = (
            "id",
            "object",
            "name",
            "description",
            "unit_label",
            "active",
            "metadata",
            "livemode",
            "created_at",
            "tax_code",
        )
        read_only_fields = ("created_at",)


class PriceSerializer(ExpandableMixin, StrictModelSerializer):
    id = PublicIdField()
    object = ObjectField("price")
    product = PublicIdRelatedField(queryset=Product.objects.all())
    meter = PublicIdRelatedField(queryset=Meter.objects.all(), required=False, allow_null=True)
    cycle = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='Billing cycle, e.g. {"kind": "interval", "unit": "month", "count": 1}.',
    )
    tiers = TiersField(required=False)
    metadata = MetadataField(required=False)
    tax_code = tax_code_field("Tax code overriding the product's (`txcd_…` or its code); null: the product's.")
    usage_filter = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(max_length=100), max_length=50),
        required=False,
        help_text='Bill only the meter\'s events whose properties match, e.g. {"region": ["eu"]}.',
    )
    expandable = {"product": ("billing.serializers.ProductSerializer", "product")}

    class Meta:
        model = Price
        fields = (
            "id",
            "object",
            "product",
            "nickname",
            "lookup_key",
            "currency",
            "type",
            "scheme",
            "unit_amount",
            "tiers",
            "package_size",
            "package_rounding",
            "cycle",
            "usage_type",
            "meter",
            "tax_behavior",
            "trial_days",
            "active",
            "metadata",
            "livemode",
            "created_at",
            "tax_code",
            # Issue 16 (usage): free units, percentage pricing, usage filter.
            "free_units",
            "percentage_rate",
            "fixed_amount",
            "free_amount",
            "per_transaction_min_amount",
            "per_transaction_max_amount",
            "usage_filter",
            "billing_timing",
            "minimum_amount",
        )
        read_only_fields = ("created_at",)
        # The partial unique constraint on lookup_key is checked by the model on save.
        validators: list = []


class CouponSerializer(StrictModelSerializer):
    id = PublicIdField()
    object = ObjectField("coupon")
    applies_to = PublicIdRelatedField(queryset=Product.objects.all(), many=True, required=False)

    class Meta:
        model = Coupon
        fields = (
            "id",
            "object",
            "name",
            "percent_off",
            "amount_off",
            "currency",
            "duration",
            "duration_in_periods",
            "max_redemptions",
            "times_redeemed",
            "redeem_by",
            "applies_to",
            "active",
            "livemode",
            "created_at",
        )
        read_only_fields = ("times_redeemed", "created_at")
        extra_kwargs = {"amount_off": {"min_value": 1}}


class PromotionCodeSerializer(StrictModelSerializer):
    id = PublicIdField()
    object = ObjectField("promotion_code")
    coupon = PublicIdRelatedField(queryset=Coupon.objects.all())
    customer = PublicIdRelatedField(queryset=Customer.objects.all(), required=False, allow_null=True)

    class Meta:
        model = PromotionCode
        fields = (
            "id",
            "object",
            "coupon",
            "code",
            "active",
            "max_redemptions",
            "times_redeemed",
            "expires_at",
            "customer",
            "first_time_only",
            "livemode",
            "created_at",
        )
        read_only_fields = ("times_redeemed", "created_at")
        validators: list = []
        extra_kwargs = {"code": {"validators": []}}


class SubscriptionItemSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("subscription_item")
    price = PublicIdRelatedField(model=Price, read_only=True)

    class Meta:
        model = SubscriptionItem
        fields = ("id", "object", "price", "quantity")
        read_only_fields = fields


class DiscountSerializer(serializers.Serializer):
    """One discount of a subscription (`di_`) or of a customer (`cdi_`), Stripe's `discount` object."""

    id = PublicIdField()
    object = ObjectField("discount")
    coupon = PublicIdRelatedField(model=Coupon, read_only=True)
    promotion_code = PublicIdRelatedField(model=PromotionCode, read_only=True)
    position = serializers.IntegerField(read_only=True, required=False, help_text="Order of application (0 first).")
    periods_applied = serializers.IntegerField(read_only=True)
    carry_over_remaining = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="A carry-over coupon's amount not used yet (minor units)."
    )
    start = serializers.DateTimeField(read_only=True)
    end = serializers.DateTimeField(read_only=True, allow_null=True)


class DiscountInputSerializer(StrictSerializer):
    """A discount asked for: `{"coupon": "coupon_1"}` or `{"promotion_code": "SPRING"}`."""

    coupon = PublicIdRelatedField(queryset=Coupon.objects.all(), required=False, allow_null=True)
    promotion_code = serializers.CharField(required=False, allow_null=True, max_length=50)

    def validate(self, attrs: dict) -> dict:
        if (attrs.get("coupon") is None) == (not attrs.get("promotion_code")):
            raise serializers.ValidationError(
                {"coupon": [serializers.ErrorDetail("Give a coupon or a promotion code.", code="coupon_or_code")]}
            )
        return attrs


PRORATION_CREDIT_BASES = ["classic", "flexible"]


class SubscriptionSerializer(ExpandableMixin, serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("subscription")
    customer = PublicIdRelatedField(model=Customer, read_only=True)
    coupon = PublicIdRelatedField(model=Coupon, read_only=True)
    discounts = serializers.SerializerMethodField(help_text="The running discounts, in the order they apply.")
    proration_credit_basis = serializers.ChoiceField(
        choices=PRORATION_CREDIT_BASES,
        allow_blank=True,
        read_only=True,
        help_text="classic or flexible; blank: the platform default (docs/billing.md).",
    )
    items = SubscriptionItemSerializer(many=True, read_only=True)
    cycle = serializers.DictField(read_only=True)
    # subupdate (issue 16): an item change waiting for its invoice's payment, or null.
    pending_update = PendingUpdateField()
    billing_cycle_anchor_config = serializers.DictField(read_only=True, allow_null=True)
    expandable = {"customer": ("customers.serializers.CustomerSerializer", "customer")}

    class Meta:
        model = Subscription
        fields = (
            "id",
            "object",
            "customer",
            "status",
            "currency",
            "cycle",
            "billing_cycle_anchor",
            "current_period_start",
            "current_period_end",
            "collection_method",
            "days_until_due",
            "trial_start",
            "trial_end",
            "cancel_at_period_end",
            "cancel_at",
            "canceled_at",
            "cancellation_reason",
            "ended_at",
            "paused_at",
            "resumes_at",
            "coupon",
            "discounts",
            "proration_credit_basis",
            "items",
            "metadata",
            "created_at",
            "updated_at",
            "pending_update",
            "billing_cycle_anchor_config",
            "free_until",
        )
        read_only_fields = fields

    @extend_schema_field(DiscountSerializer(many=True))
    def get_discounts(self, subscription: Subscription) -> list:
        running = [discount for discount in subscription.discounts.all() if discount.end is None]
        return DiscountSerializer(running, many=True, context=self.context).data


class ItemInputSerializer(StrictSerializer):
    price = PublicIdRelatedField(queryset=Price.objects.select_related("product"))
    quantity = serializers.IntegerField(min_value=1, default=1, max_value=MAX_QUANTITY)


class AnchorConfigSerializer(StrictSerializer):
    """Stripe's `billing_cycle_anchor_config`: bill on day N (of month M) at hh:mm:ss, in the customer's zone."""

    day_of_month = serializers.IntegerField(
        min_value=1, max_value=31, help_text="1 to 31; a shorter month bills on its last day."
    )
    month = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=12,
        help_text="Yearly (or several-month) cycles only: the month to bill in.",
    )
    hour = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=23)
    minute = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=59)
    second = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=59)


class SubscriptionCreateSerializer(StrictSerializer):
    customer = PublicIdRelatedField(queryset=Customer.objects.select_related("brand", "test_clock"))
    items = ItemInputSerializer(many=True, allow_empty=False)
    trial_days = serializers.IntegerField(required=False, min_value=0, max_value=730, allow_null=True)
    billing_cycle_anchor = serializers.DateTimeField(required=False, allow_null=True)
    coupon = PublicIdRelatedField(queryset=Coupon.objects.all(), required=False, allow_null=True)
    promotion_code = serializers.CharField(required=False, allow_null=True, max_length=50)
    collection_method = serializers.ChoiceField(
        choices=Subscription.CollectionMethod.choices, default=Subscription.CollectionMethod.CHARGE_AUTOMATICALLY
    )
    days_until_due = serializers.IntegerField(required=False, min_value=0, max_value=365, allow_null=True)
    metadata = MetadataField(required=False)
    # Issue 16, cycles.
    billing_cycle_anchor_config = AnchorConfigSerializer(
        required=False,
        allow_null=True,
        help_text="Choose the anchor by a rule (mutually exclusive with billing_cycle_anchor).",
    )
    proration_behavior = serializers.ChoiceField(
        choices=[("create_prorations", "create_prorations"), ("none", "none")],
        required=False,
        help_text="With an anchor: bill the time up to it now, prorated, or give it free. "
        "Default: the TARIF_ANCHOR_FIRST_PERIOD setting.",
    )
    # Issue 16 (discounts helper): several discounts, in order, and the proration credit basis.
    discounts = DiscountInputSerializer(many=True, required=False, max_length=20)
    proration_credit_basis = serializers.ChoiceField(
        choices=PRORATION_CREDIT_BASES, required=False, allow_blank=True, default=""
    )


class SubscriptionChangeSerializer(StrictSerializer):
    items = ItemInputSerializer(many=True, allow_empty=False)
    proration_behavior = serializers.ChoiceField(choices=PRORATION_CHOICES, default="create_prorations")
    proration_credit_basis = serializers.ChoiceField(
        choices=PRORATION_CREDIT_BASES,
        required=False,
        allow_blank=True,
        help_text="Becomes the subscription's basis and credits this change (blank: the platform default).",
    )


class SubscriptionCancelSerializer(StrictSerializer):
    at_period_end = serializers.BooleanField(default=True)
    cancel_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="End the subscription at this instant instead (in the future)."
    )
    prorate = serializers.BooleanField(default=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class SubscriptionPauseSerializer(StrictSerializer):
    resumes_at = serializers.DateTimeField(required=False, allow_null=True)


class ProrationLineSerializer(serializers.Serializer):
    description = serializers.CharField()
    amount = serializers.IntegerField()


class ChangePreviewSerializer(serializers.Serializer):
    object = serializers.CharField(default="subscription_change_preview")
    at = serializers.DateTimeField()
    proration_behavior = serializers.CharField()
    cycle_changed = serializers.BooleanField()
    proration_total = serializers.IntegerField()
    proration_lines = ProrationLineSerializer(many=True)
    immediate_invoice = InvoicePreviewSerializer(allow_null=True)
    upcoming_invoice = InvoicePreviewSerializer(allow_null=True)
    mrr_before = serializers.IntegerField()
    mrr_after = serializers.IntegerField()


class CreatePreviewSerializer(serializers.Serializer):
    object = serializers.CharField(default="subscription_create_preview")
    at = serializers.DateTimeField()
    status = serializers.CharField()
    trial_end = serializers.DateTimeField(allow_null=True)
    current_period_start = serializers.DateTimeField()
    current_period_end = serializers.DateTimeField()
    currency = serializers.CharField()
    mrr = serializers.IntegerField()
    first_invoice = InvoicePreviewSerializer()


class InvoiceItemSerializer(ExpandableMixin, StrictModelSerializer):
    id = PublicIdField()
    object = ObjectField("invoice_item")
    customer = PublicIdRelatedField(queryset=Customer.objects.select_related("test_clock"))
    subscription = PublicIdRelatedField(queryset=Subscription.objects.all(), required=False, allow_null=True)
    price = PublicIdRelatedField(queryset=Price.objects.select_related("product"), required=False, allow_null=True)
    invoice = PublicIdRelatedField(model=Invoice, read_only=True)
    invoice_now = serializers.BooleanField(write_only=True, default=False)
    amount = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=-MAX_AMOUNT,
        max_value=MAX_AMOUNT,
        help_text="Minor units per unit (at most 99,999,999 either way; negative for a credit). Give amount or price.",
    )
    currency = CurrencyField(required=False, allow_null=True)
    quantity = serializers.IntegerField(min_value=1, default=1, max_value=MAX_QUANTITY)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    expandable = {"customer": ("customers.serializers.CustomerSerializer", "customer")}

    class Meta:
        model = InvoiceItem
        fields = (
            "id",
            "object",
            "customer",
            "subscription",
            "price",
            "description",
            "quantity",
            "amount",
            "currency",
            "discountable",
            "proration",
            "period_start",
            "period_end",
            "invoice",
            "invoice_now",
            "created_at",
        )
        read_only_fields = ("proration", "period_start", "period_end", "created_at")


class PaymentMethodSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("payment_method")
    customer = PublicIdRelatedField(model=Customer, read_only=True)

    class Meta:
        model = PaymentMethod
        fields = (
            "id",
            "object",
            "customer",
            "kind",
            "gateway",
            "brand",
            "last4",
            "exp_month",
            "exp_year",
            "wallet",
            "iban_last4",
            "mandate_reference",
            "is_default",
            "active",
            "created_at",
            "detached_at",
        )
        read_only_fields = fields


class PaymentMethodCreateSerializer(StrictSerializer):
    customer = PublicIdRelatedField(queryset=Customer.objects.all())
    source = serializers.DictField(
        help_text='{"card": {"number", "exp_month", "exp_year"}}, {"iban": "…"}, {"type": "bank_transfer"} '
        'or {"type": "manual"}. Card and IBAN data go to the gateway and are never stored.'
    )
    make_default = serializers.BooleanField(default=True)


class PaymentSerializer(ExpandableMixin, serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("payment")
    invoice = PublicIdRelatedField(model=Invoice, read_only=True)
    customer = PublicIdRelatedField(model=Customer, read_only=True)
    payment_method = PublicIdRelatedField(model=PaymentMethod, read_only=True)
    expandable = {"invoice": ("invoices.serializers.InvoiceSerializer", "invoice")}

    class Meta:
        model = Payment
        fields = (
            "id",
            "object",
            "invoice",
            "customer",
            "payment_method",
            "method",
            "gateway",
            "status",
            "amount",
            "currency",
            "amount_refunded",
            "attempt",
            "decline_code",
            "failure_message",
            "reference",
            "attempted_at",
            "settled_at",
            "created_at",
        )
        read_only_fields = fields


class RefundSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("refund")
    payment = PublicIdRelatedField(model=Payment, read_only=True)
    invoice = PublicIdRelatedField(model=Invoice, read_only=True)
    credit_note = PublicIdRelatedField(model=CreditNote, read_only=True)

    class Meta:
        model = Refund
        fields = (
            "id",
            "object",
            "payment",
            "invoice",
            "credit_note",
            "status",
            "amount",
            "currency",
            "reason",
            "memo",
            "needs_approval",
            "failure_code",
            "failure_message",
            "requested_at",
            "executed_at",
        )
        read_only_fields = fields


class RefundCreateSerializer(StrictSerializer):
    payment = PublicIdRelatedField(queryset=Payment.objects.all())
    amount = serializers.IntegerField(min_value=1, max_value=MAX_TOTAL, help_text="Minor units.")
    reason = serializers.ChoiceField(choices=CreditNote.Reason.choices)
    memo = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class UsageEventInputSerializer(serializers.Serializer):
    """One event; validated by the usage service so that each bad event is reported on its own."""

    id = serializers.CharField(help_text="Your id for the event: sending it again records it once.")
    customer = serializers.CharField(help_text="cus_…")
    meter = serializers.CharField(help_text="The meter's event key.")
    timestamp = serializers.DateTimeField()
    value = serializers.DecimalField(max_digits=20, decimal_places=6, required=False)
    unique_value = serializers.CharField(required=False, allow_blank=True, default="")
    properties = serializers.DictField(
        child=serializers.CharField(max_length=100),
        required=False,
        help_text='Dimensions prices filter on: up to 10 string values, e.g. {"region": "eu"}.',
    )


class UsageBatchSerializer(StrictSerializer):
    events = UsageEventListField(
        child=serializers.DictField(),
        allow_empty=False,
        max_length=MAX_BATCH_SIZE,
        help_text=f"Up to {MAX_BATCH_SIZE} events, each as described by UsageEventInput.",
    )


class UsageEventErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class UsageBatchResultSerializer(serializers.Serializer):
    object = serializers.CharField()
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    errors = UsageEventErrorSerializer(many=True)


class UsageEventSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("usage_event")
    customer = PublicIdRelatedField(model=Customer, read_only=True)
    meter = serializers.SlugRelatedField(slug_field="key", read_only=True)

    class Meta:
        model = UsageEvent
        fields = (
            "id",
            "object",
            "customer",
            "meter",
            "external_id",
            "value",
            "unique_value",
            "properties",
            "timestamp",
            "created_at",
        )
        read_only_fields = fields


# DomainEvent.object_type -> model label, so event payloads carry public ids.
EVENT_OBJECT_LABELS = {
    "customer": "customers.customer",
    "subscription": "billing.subscription",
    "invoice": "invoices.invoice",
    "credit_note": "invoices.creditnote",
    "payment": "billing.payment",
    "payment_method": "billing.paymentmethod",
    "refund": "billing.refund",
    "invoice_item": "billing.invoiceitem",
    "test_clock": "billing.testclock",
    "coupon": "billing.coupon",
    "promotion_code": "billing.promotioncode",
    "usage_event": "billing.usageevent",
    "dunning_case": None,
    "quote": "quotes.quote",
}


# Internal references in event data, shown as public ids; staff user ids are not shown at all.
EVENT_DATA_ID_KEYS = {
    "customer": "cus",
    "subscription": "sub",
    "invoice": "in",
    "credit_note": "cn",
    "payment": "pay",
    "payment_method": "pm",
    "refund": "re",
    "price": "price",
    "product": "prod",
    "coupon": "coupon",
    "invoice_item": "ii",
    "revises": "qt",
    "superseded_by": "qt",
}
STAFF_ONLY_EVENT_KEYS = frozenset({"requested_by", "decided_by", "acting_user", "approver", "recorded_by"})


def event_data_public(data: dict) -> dict:
    public = {}
    for key, value in data.items():
        if key in STAFF_ONLY_EVENT_KEYS:
            continue
        prefix = EVENT_DATA_ID_KEYS.get(key)
        public[key] = (
            f"{prefix}_{value}" if prefix and isinstance(value, int) and not isinstance(value, bool) else value
        )
    return public


def event_object_public_id(object_type: str, object_id: str) -> str:
    label = EVENT_OBJECT_LABELS.get(object_type)
    prefix = PREFIXES.get(label) if label else None
    return f"{prefix}_{object_id}" if prefix and object_id.isdigit() else object_id


class DomainEventSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    object = ObjectField("event")
    customer = PublicIdRelatedField(model=Customer, read_only=True)
    object_id = serializers.SerializerMethodField()
    data = serializers.SerializerMethodField()

    class Meta:
        model = DomainEvent
        fields = (
            "id",
            "object",
            "type",
            "object_type",
            "object_id",
            "customer",
            "data",
            "occurred_at",
            "livemode",
            "created_at",
        )
        read_only_fields = fields

    def get_object_id(self, event: DomainEvent) -> str:
        return event_object_public_id(event.object_type, event.object_id)

    def get_data(self, event: DomainEvent) -> dict:
        return event_data_public(event.data)


class TestClockSerializer(StrictModelSerializer):
    __test__ = False
    id = PublicIdField()
    object = ObjectField("test_clock")

    class Meta:
        model = TestClock
        fields = ("id", "object", "name", "frozen_time", "status", "created_at")
        read_only_fields = ("status", "created_at")


class TestClockAdvanceSerializer(StrictSerializer):
    __test__ = False
    frozen_time = serializers.DateTimeField(help_text="The new time; only forward.")


class WebhookEndpointSerializer(StrictModelSerializer):
    id = PublicIdField()
    object = ObjectField("webhook_endpoint")
    enabled_events = serializers.ListField(
        child=serializers.CharField(max_length=80),
        required=False,
        help_text='Types to send, e.g. ["invoice.finalized", "customer.subscription.*"]; empty or ["*"]: all.',
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("id", "object", "url", "description", "enabled_events", "active", "livemode", "created_at")
        read_only_fields = ("created_at",)


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """Returned once, when the endpoint is created or its secret rolled."""

    secret = serializers.CharField(read_only=True, help_text="whsec_…: verify signatures with it (shown once).")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = (*WebhookEndpointSerializer.Meta.fields, "secret")
