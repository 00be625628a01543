"""Starting a subscription from the portal when none is active (issue 17).

The portal offers one live subscription at a time. Two clicks on "Subscribe and pay" (or
two tabs) race here: the customer's row is locked first (its rank comes before the
invoices the creation issues), so the second request waits, then finds the first's
subscription and is refused instead of creating and charging a second one.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from billing.models import Subscription
from billing.services.subscriptions import ItemSpec, SubscriptionError, subscription_create
from config.types import ActingUser
from customers.locks import customers_lock_balance
from customers.models import Customer

LIVE_STATUSES = (Subscription.Status.ACTIVE, Subscription.Status.TRIALING, Subscription.Status.PAST_DUE)


def customer_has_live_subscription(*, customer: Customer) -> bool:
    return Subscription.objects.filter(customer=customer, status__in=LIVE_STATUSES).exists()


@transaction.atomic(savepoint=False)
def portal_subscription_start(
    *, customer: Customer, items: Sequence[ItemSpec], acting_user: ActingUser = None
) -> Subscription:
    """Subscribe `customer` to `items` unless it has a live subscription (SubscriptionError,
    code `already_subscribed`); the first invoice is issued and handed to collection."""
    customers_lock_balance(customer_ids=[customer.pk])
    if customer_has_live_subscription(customer=customer):
        raise SubscriptionError(
            _("You already have an active subscription: change its plan instead."), code="already_subscribed"
        )
    return subscription_create(customer=customer, items=items, acting_user=acting_user)
