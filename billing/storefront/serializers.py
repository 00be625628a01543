"""The API's shapes of payment links and pricing tables."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from billing.limits import MAX_QUANTITY
from billing.models import Price
from billing.storefront.models import MAX_LINK_ITEMS, MAX_TRIAL_DAYS, PaymentLink, PricingTable
from billing.storefront.selectors import payment_link_usage_count
from config.api.ids import public_id
from config.api.serializers import ObjectField, PublicIdRelatedField, StrictSerializer
from invoices.models import Brand


def _absolute(path: str) -> str:
    return settings.TARIF_BASE_URL.rstrip("/") + path


class AdjustableQuantitySerializer(StrictSerializer):
    enabled = serializers.BooleanField()
    minimum = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, required=False)
    maximum = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, required=False)


class PaymentLinkLineItemInputSerializer(StrictSerializer):
    price = PublicIdRelatedField(queryset=Price.objects.all(), help_text="The price to sell (price_…).")
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1)
    adjustable_quantity = AdjustableQuantitySerializer(
        required=False, help_text="Let the buyer choose the quantity between minimum and maximum."
    )


class PaymentLinkCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, help_text="For you; buyers see the products.")
    brand = PublicIdRelatedField(
        queryset=Brand.objects.all(), required=False, help_text="The brand the page shows (default: the default brand)."
    )
    mode = serializers.ChoiceField(choices=PaymentLink.Mode.choices, default=PaymentLink.Mode.SUBSCRIPTION)
    line_items = PaymentLinkLineItemInputSerializer(many=True, min_length=1, max_length=MAX_LINK_ITEMS)
    trial_period_days = serializers.IntegerField(min_value=1, max_value=MAX_TRIAL_DAYS, required=False, allow_null=True)
    allow_promotion_codes = serializers.BooleanField(default=False)
    after_completion_url = serializers.URLField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Where buyers go after paying (empty: a thank-you page).",
    )


class PaymentLinkUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    active = serializers.BooleanField(required=False, help_text="false deactivates the link: its URL says so (410).")
    trial_period_days = serializers.IntegerField(min_value=1, max_value=MAX_TRIAL_DAYS, required=False, allow_null=True)
    allow_promotion_codes = serializers.BooleanField(required=False)
    after_completion_url = serializers.URLField(required=False, allow_blank=True)


class PaymentLinkLineItemSerializer(serializers.Serializer):
    price = serializers.SerializerMethodField(help_text="The price's id (price_…).")
    quantity = serializers.IntegerField()
    adjustable_quantity = serializers.SerializerMethodField()

    def get_price(self, item: Any) -> str | None:
        return public_id(item.price)

    def get_adjustable_quantity(self, item: Any) -> dict[str, Any]:
        return {"enabled": item.adjustable, "minimum": item.adjustable_minimum, "maximum": item.adjustable_maximum}


class PaymentLinkSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    object = ObjectField("payment_link")
    url = serializers.SerializerMethodField(help_text="The URL to share.")
    brand = serializers.SerializerMethodField(help_text="The brand's id (brand_…).")
    line_items = PaymentLinkLineItemSerializer(source="items", many=True, read_only=True)
    usage_count = serializers.SerializerMethodField(help_text="Checkout sessions from this link that completed.")

    class Meta:
        model = PaymentLink
        fields = (
            "id",
            "object",
            "url",
            "active",
            "name",
            "brand",
            "mode",
            "line_items",
            "trial_period_days",
            "allow_promotion_codes",
            "after_completion_url",
            "usage_count",
            "livemode",
            "created_at",
        )
        read_only_fields = fields

    def get_url(self, link: PaymentLink) -> str:
        return _absolute(reverse("storefront:buy", args=[link.public_id]))

    def get_brand(self, link: PaymentLink) -> str | None:
        return public_id(link.brand)

    def get_usage_count(self, link: PaymentLink) -> int:
        annotated = getattr(link, "usage_count", None)
        return annotated if annotated is not None else payment_link_usage_count(link=link)


class PricingTableEntrySerializer(serializers.Serializer):
    product = serializers.SerializerMethodField(help_text="The product's id (prod_…).")
    monthly_price = serializers.SerializerMethodField()
    yearly_price = serializers.SerializerMethodField()
    features = serializers.ListField(child=serializers.CharField())
    highlighted = serializers.BooleanField()

    def get_product(self, entry: Any) -> str | None:
        return public_id(entry.product)

    def get_monthly_price(self, entry: Any) -> str | None:
        return public_id(entry.monthly_price) if entry.monthly_price_id else None

    def get_yearly_price(self, entry: Any) -> str | None:
        return public_id(entry.yearly_price) if entry.yearly_price_id else None


class PricingTableSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    object = ObjectField("pricing_table")
    url = serializers.SerializerMethodField(help_text="The public page.")
    embed_script = serializers.SerializerMethodField(help_text="The embed script's URL (docs/pricing-tables.md).")
    brand = serializers.SerializerMethodField()
    entries = PricingTableEntrySerializer(many=True, read_only=True)

    class Meta:
        model = PricingTable
        fields = (
            "id",
            "object",
            "url",
            "embed_script",
            "active",
            "name",
            "brand",
            "entries",
            "button_label",
            "trial_period_days",
            "allow_promotion_codes",
            "success_url",
            "cancel_url",
            "livemode",
            "created_at",
        )
        read_only_fields = fields

    def get_url(self, table: PricingTable) -> str:
        return _absolute(reverse("storefront:pricing", args=[table.public_id]))

    def get_embed_script(self, table: PricingTable) -> str:
        return _absolute(reverse("storefront:pricing_embed_script", args=[table.public_id]))

    def get_brand(self, table: PricingTable) -> str | None:
        return public_id(table.brand)
