"""Hypothesis: after any sequence of subscription changes, a customer's entitlements equal what the
active items grant, computed from scratch (issue 16)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.entitlements.models import Feature
from billing.entitlements.selectors import (
    customer_entitlements,
    customer_entitlements_expected,
    customer_entitlements_in_mode,
)
from billing.entitlements.services import feature_create, product_feature_attach, product_feature_detach
from billing.models import Subscription
from billing.services.changes import subscription_change
from billing.services.subscriptions import (
    ItemSpec,
    SubscriptionError,
    subscription_cancel,
    subscription_create,
    subscription_pause,
    subscription_resume,
)
from billing.states import InvalidTransition
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db


class Rollback(Exception):
    pass


def in_rollback(test) -> None:
    """One example inside a transaction that is rolled back, so examples never see each other."""
    try:
        with _savepoint():
            test()
            raise Rollback
    except Rollback:
        pass


operations = st.lists(
    st.tuples(
        st.sampled_from(["create", "change", "cancel_now", "cancel_end", "pause", "resume", "attach", "detach"]),
        st.integers(0, 3),  # which price / subscription / grant
        st.integers(1, 4),  # quantity
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_entitlements_always_equal_what_active_items_grant(steps, make_customer, make_price, product_factory):
    in_rollback(lambda: _run(steps, make_customer, make_price, product_factory))


def _savepoint() -> transaction.Atomic:
    block = transaction.atomic()
    # It stands for a test case's own transaction: each service call in it is a transaction of its
    # own for the lock-order checker (config/locking.py), and durable services may run in it.
    block._from_testcase = True  # type: ignore[attr-defined]
    return block


def _run(steps, make_customer, make_price, product_factory) -> None:
    customer = make_customer()
    features = [
        feature_create(data={"lookup_key": f"f{n}-{customer.pk}", "name": f"F{n}", "kind": kind})
        for n, kind in enumerate([Feature.Kind.BOOLEAN, Feature.Kind.QUANTITY, Feature.Kind.QUANTITY])
    ]
    products = [product_factory(name=f"P{n}") for n in range(3)]
    product_feature_attach(product=products[0], feature=features[0])
    product_feature_attach(product=products[0], feature=features[1], quantity=5, per_unit=True)
    product_feature_attach(product=products[1], feature=features[1], quantity=2)
    product_feature_attach(product=products[2], feature=features[2], quantity=7)
    prices = [make_price(1000 * (n + 1), product=products[n % 3]) for n in range(4)]
    at = utc(2024, 4, 1)
    for action, which, quantity in steps:
        at += timedelta(hours=7)
        live = list(Subscription.objects.filter(customer=customer).exclude(status=Subscription.Status.CANCELED))
        target = live[which % len(live)] if live else None
        try:
            with _savepoint():
                _step(
                    action,
                    which,
                    quantity,
                    at=at,
                    target=target,
                    customer=customer,
                    prices=prices,
                    products=products,
                    features=features,
                )
        except (SubscriptionError, InvalidTransition):
            pass  # a refused step changes nothing, which the check below also covers

        stored = {e.feature_id: e.quantity for e in customer_entitlements(customer_id=customer.pk)}
        assert stored == customer_entitlements_expected(customer_id=customer.pk), (action, which, quantity)
        # The API's one-round-trip path reads the same thing, and nothing in the other mode.
        assert customer_entitlements_in_mode(customer_id=customer.pk, livemode=customer.livemode) == (
            customer_entitlements(customer_id=customer.pk)
        )
        assert customer_entitlements_in_mode(customer_id=customer.pk, livemode=not customer.livemode) is None


def _step(action, which, quantity, *, at, target, customer, prices, products, features) -> None:
    if action == "create" or target is None:
        subscription_create(customer=customer, items=[ItemSpec(prices[which], quantity)], at=at, trial_days=0)
    elif action == "change":
        items = [ItemSpec(prices[which], quantity)]
        if which % 2:
            items.append(ItemSpec(prices[(which + 1) % 4]))
        subscription_change(subscription=target, items=items, at=at)
    elif action == "cancel_now":
        subscription_cancel(subscription=target, at=at, at_period_end=False)
    elif action == "cancel_end":
        subscription_cancel(subscription=target, at=at, at_period_end=True)
    elif action == "pause":
        subscription_pause(subscription=target, at=at)
    elif action == "resume":
        subscription_resume(subscription=target, at=at)
    elif action == "attach":
        product = products[which % 3]
        feature = features[(which + 1) % 3]
        if not product.feature_grants.filter(feature=feature).exists():
            product_feature_attach(
                product=product,
                feature=feature,
                quantity=None if feature.kind == Feature.Kind.BOOLEAN else quantity,
            )
    elif action == "detach":
        grant = products[which % 3].feature_grants.order_by("pk").first()
        if grant is not None:
            product_feature_detach(grant=grant)
