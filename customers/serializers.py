from __future__ import annotations

from billing.models import TestClock
from config.api.serializers import (
    MetadataField,
    ObjectField,
    PublicIdField,
    PublicIdRelatedField,
    StrictModelSerializer,
)
from customers.models import Customer
from customers.services import CUSTOMER_EDITABLE_FIELDS


class CustomerSerializer(StrictModelSerializer):
    id = PublicIdField()
    object = ObjectField("customer")
    test_clock = PublicIdRelatedField(queryset=TestClock.objects.all(), required=False, allow_null=True)
    metadata = MetadataField(required=False)

    class Meta:
        model = Customer
        # Internal notes stay in the console: the API is also the customer's integrators' door.
        fields = (
            "id",
            "object",
            *(name for name in CUSTOMER_EDITABLE_FIELDS if name != "notes"),
            "livemode",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("created_at", "updated_at")
        extra_kwargs = {"tax_id": {"help_text": "VAT number (encrypted at rest)."}}
