"""Row locks, always taken in this order: customer, then invitation, then cursor."""

from __future__ import annotations

from django.db.models import QuerySet

from customers.models import Customer
from feedback.models import Invitation


def customer_qs_for_update() -> QuerySet[Customer]:
    # Serializes the throttling check of one customer's invitations.
    return Customer.objects.order_by("pk").select_for_update(of=("self",))


def invitation_qs_for_update() -> QuerySet[Invitation]:
    return Invitation.objects.order_by("pk").select_for_update(of=("self",))
