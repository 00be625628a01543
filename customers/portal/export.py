"""`Download all my data`: what Tarif holds about a customer, as JSON (GDPR art. 15 and 20)."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.forms.models import model_to_dict

from billing.models import Payment, PaymentMethod, Subscription
from customers.models import Customer
from invoices.models import CreditNote, Invoice

CUSTOMER_FIELDS = (
    "legal_name", "email", "invoice_email", "country", "preferred_language", "currency", "timezone",
    "is_business", "tax_id", "siren", "address_line1", "address_line2", "postal_code", "city", "region",
    "delivery_address", "created_at",
)  # fmt: skip


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))


def customer_data_export(*, customer: Customer) -> dict[str, Any]:
    data: dict[str, Any] = {
        "customer": {name: getattr(customer, name) for name in CUSTOMER_FIELDS},
        "portal_users": list(customer.portal_users.values("user__email", "invited_at")),
        "subscriptions": [
            {
                **model_to_dict(subscription, exclude=["metadata", "coupon", "promotion_code", "customer"]),
                "items": list(subscription.items.values("price__product__name", "price__nickname", "quantity")),
            }
            for subscription in Subscription.objects.filter(customer=customer).order_by("pk")
        ],
        "invoices": list(
            Invoice.objects.filter(customer=customer)
            .exclude(status=Invoice.Status.DRAFT)
            .values("number", "status", "currency", "total", "amount_due", "amount_paid", "finalized_at", "due_at")
            .order_by("pk")
        ),
        "credit_notes": list(
            CreditNote.objects.filter(customer=customer)
            .values("number", "status", "currency", "total", "invoice__number", "created_at")
            .order_by("pk")
        ),
        "payments": list(
            Payment.objects.filter(customer=customer)
            .values("invoice__number", "amount", "currency", "method", "status", "attempted_at", "decline_code")
            .order_by("pk")
        ),
        "payment_methods": [
            {"display": str(method), "kind": method.kind, "default": method.is_default, "active": method.active}
            for method in PaymentMethod.objects.filter(customer=customer).order_by("pk")
        ],
        "notifications": list(
            customer.notifications.values("kind", "status", "recipient", "subject", "sent_at").order_by("pk")
        ),
    }
    return _plain(data)
