"""subscription_adopt: a subscription billed elsewhere for its current period, renewed by Tarif."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.errors import CustomerCurrencyMismatch
from billing.models import Subscription
from billing.services.subscriptions.adopt import subscription_adopt
from billing.services.subscriptions.common import ItemSpec, SubscriptionError
from invoices.models import Invoice
from tests.factories import CustomerFactory, PriceFactory

pytestmark = pytest.mark.django_db

JAN_15 = datetime(2026, 1, 15, tzinfo=UTC)
FEB_15 = datetime(2026, 2, 15, tzinfo=UTC)
MAR_15 = datetime(2026, 3, 15, tzinfo=UTC)


def adopt(**overrides):
    customer = overrides.pop("customer", None) or CustomerFactory(timezone="UTC")
    price = overrides.pop("price", None) or PriceFactory()
    arguments = {
        "customer": customer,
        "items": [ItemSpec(price=price, quantity=2)],
        "status": "active",
        "current_period_start": FEB_15,
        "current_period_end": MAR_15,
        "billing_cycle_anchor": JAN_15,
        **overrides,
    }
    return subscription_adopt(**arguments)


def test_adopted_subscription_keeps_the_period_and_issues_no_invoice():
    subscription = adopt()
    assert (subscription.current_period_start, subscription.current_period_end) == (FEB_15, MAR_15)
    assert subscription.status == Subscription.Status.ACTIVE and subscription.items.get().quantity == 2
    assert not Invoice.objects.filter(subscription=subscription).exists()


def test_a_period_the_cycle_would_not_produce_is_refused():
    # Anchor 15 Jan, monthly: the period starting 15 Feb ends 15 Mar, not 16 Mar.
    with pytest.raises(SubscriptionError) as refused:
        adopt(current_period_end=datetime(2026, 3, 16, tzinfo=UTC))
    assert refused.value.problem_code == "period_mismatch"
    assert not Subscription.objects.exists()


def test_local_time_zone_would_shift_stripes_utc_dates():
    # Stripe counts months in UTC; a Paris customer's months would end at Paris midnight instead:
    # the import gives customers UTC, and an adoption in another zone that would move the date is refused.
    anchor = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)
    with pytest.raises(SubscriptionError):
        adopt(
            customer=CustomerFactory(timezone="Pacific/Auckland"),
            billing_cycle_anchor=anchor,
            current_period_start=datetime(2026, 3, 15, 23, 30, tzinfo=UTC),
            current_period_end=datetime(2026, 4, 15, 23, 30, tzinfo=UTC),
        )


def test_trialing_needs_its_trial_end_and_only_trialing_has_one():
    with pytest.raises(SubscriptionError) as refused:
        adopt(status="trialing")
    assert refused.value.problem_code == "invalid_trial"
    with pytest.raises(SubscriptionError):
        adopt(trial_end=MAR_15)
    trial = adopt(status="trialing", trial_end=MAR_15, billing_cycle_anchor=MAR_15)
    assert trial.trial_end == MAR_15 and trial.trial_start == FEB_15


def test_ended_statuses_and_other_currencies_are_refused():
    with pytest.raises(SubscriptionError) as refused:
        adopt(status="canceled")
    assert refused.value.problem_code == "status"
    with pytest.raises(CustomerCurrencyMismatch):
        adopt(price=PriceFactory(currency="USD"))
