"""Input of `PATCH /api/v1/subscriptions/{id}` (Stripe's subscription update, issue 16 subupdate).

Types only: the rules live in billing/services/subscriptions/update.py. A parameter left out
keeps its value; `null` clears where clearing exists (`coupon`, `cancel_at`, `days_until_due`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.limits import MAX_QUANTITY
from billing.models import Coupon, PendingUpdate, Price, Subscription, SubscriptionItem
from billing.services.subscriptions.update import (
    KEEP,
    PAYMENT_BEHAVIORS,
    PRORATION_BEHAVIORS,
    ItemUpdate,
    SubscriptionUpdate,
)
from config.api.serializers import MetadataField, PublicIdRelatedField, StrictSerializer, id_or_none
from invoices.models import Invoice


@extend_schema_field({"oneOf": [{"type": "string", "format": "date-time"}, {"type": "string", "enum": ["now"]}]})
class TrialEndField(serializers.Field):
    """An instant, or "now" to end the trial at once (Stripe's `trial_end`)."""

    default_error_messages = {"invalid": 'Give an ISO 8601 date-time with a time zone, or "now".'}

    def to_internal_value(self, data: Any) -> datetime | str:
        if data == "now":
            return "now"
        value = serializers.DateTimeField().to_internal_value(data)
        return value

    def to_representation(self, value: Any) -> Any:
        return value


class ItemUpdateSerializer(StrictSerializer):
    id = PublicIdRelatedField(
        queryset=SubscriptionItem.objects.all(), required=False, help_text="The item to change or delete."
    )
    price = PublicIdRelatedField(
        queryset=Price.objects.select_related("product"), required=False, help_text="A new price for the item."
    )
    quantity = serializers.IntegerField(required=False, min_value=1, max_value=MAX_QUANTITY)
    deleted = serializers.BooleanField(required=False, default=False)


class SubscriptionUpdateSerializer(StrictSerializer):
    items = ItemUpdateSerializer(many=True, required=False, max_length=20)
    proration_behavior = serializers.ChoiceField(choices=list(PRORATION_BEHAVIORS), required=False)
    payment_behavior = serializers.ChoiceField(choices=list(PAYMENT_BEHAVIORS), required=False)
    coupon = PublicIdRelatedField(queryset=Coupon.objects.all(), required=False, allow_null=True)
    promotion_code = serializers.CharField(required=False, max_length=50)
    trial_end = TrialEndField(required=False)
    cancel_at = serializers.DateTimeField(required=False, allow_null=True)
    cancel_at_period_end = serializers.BooleanField(required=False)
    billing_cycle_anchor = serializers.ChoiceField(choices=["now", "unchanged"], required=False)
    collection_method = serializers.ChoiceField(choices=Subscription.CollectionMethod.choices, required=False)
    days_until_due = serializers.IntegerField(required=False, min_value=0, max_value=365, allow_null=True)
    metadata = MetadataField(
        required=False,
        help_text='Merged into the metadata; a key set to "" is removed.',
    )
    proration_credit_basis = serializers.ChoiceField(
        choices=["", "classic", "flexible"],
        required=False,
        allow_blank=True,
        help_text="How unused time is credited from now on: classic (current price), flexible (what was billed), "
        '"" for the platform default (docs/billing.md, "Proration credit basis").',
    )

    def to_update(self, *, subscription: Subscription) -> SubscriptionUpdate:
        data = self.validated_data
        items = []
        for entry in data.get("items", []):
            item = entry.get("id")
            if item is not None and item.subscription_id != subscription.pk:
                raise serializers.ValidationError(
                    {"items": [serializers.ErrorDetail("No such item on this subscription.", code="item_not_found")]}
                )
            items.append(
                ItemUpdate(
                    id=item.pk if item is not None else None,
                    price=entry.get("price"),
                    quantity=entry.get("quantity"),
                    deleted=entry.get("deleted", False),
                )
            )
        return SubscriptionUpdate(
            items=tuple(items),
            proration_behavior=data.get("proration_behavior"),
            payment_behavior=data.get("payment_behavior", "allow_incomplete"),
            coupon=data["coupon"] if "coupon" in data else KEEP,
            promotion_code=data.get("promotion_code") or None,
            trial_end=data["trial_end"] if "trial_end" in data else KEEP,
            cancel_at=data["cancel_at"] if "cancel_at" in data else KEEP,
            cancel_at_period_end=data["cancel_at_period_end"] if "cancel_at_period_end" in data else KEEP,
            billing_cycle_anchor_now=data.get("billing_cycle_anchor") == "now",
            collection_method=data["collection_method"] if "collection_method" in data else KEEP,
            days_until_due=data["days_until_due"] if "days_until_due" in data else KEEP,
            metadata=data.get("metadata"),
            proration_credit_basis=data["proration_credit_basis"] if "proration_credit_basis" in data else KEEP,
        )


PENDING_ATTRIBUTE = "pending_now"


def pending_update_prefetch() -> Prefetch:
    """Read every listed subscription's pending update in one query (the output's `pending_update`)."""
    return Prefetch(
        "pending_updates", queryset=PendingUpdate.objects.filter(status="pending"), to_attr=PENDING_ATTRIBUTE
    )


@extend_schema_field(OpenApiTypes.OBJECT)
class PendingUpdateField(serializers.Field):
    """The subscription's pending update (`null` when none): the invoice to pay, its expiry, the items."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        kwargs.setdefault("source", "*")
        super().__init__(**kwargs)

    def to_representation(self, subscription: Subscription) -> dict[str, Any] | None:
        prefetched = getattr(subscription, PENDING_ATTRIBUTE, None)
        if prefetched is not None:
            pending = prefetched[0] if prefetched else None
        else:
            pending = subscription.pending_updates.filter(status="pending").first()
        if pending is None:
            return None
        return {
            "invoice": id_or_none(Invoice, pending.invoice_id),
            "expires_at": serializers.DateTimeField().to_representation(pending.expires_at),
            "items": [
                {"price": id_or_none(Price, item["price"]), "quantity": item["quantity"]} for item in pending.items
            ],
        }
