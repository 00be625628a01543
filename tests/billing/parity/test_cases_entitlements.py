"""Issue 16, item 10: hand-worked entitlement cases, through the real services.

Sources: Stripe's Entitlements guide ("Entitlements", docs.stripe.com/billing/entitlements: a
product's features become the customer's active entitlements while the subscription is active
or trialing, and are removed when it ends; `entitlements.active_entitlement_summary.updated` on
every change) — Stripe's features are on/off; quantity limits follow Lago's entitlements
("privileges" with values) and Chargebee's "entitlements" (feature quantity per plan, summed
across items), with the choice written in docs/billing.md "Entitlements".
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.entitlements.models import Feature
from billing.entitlements.selectors import customer_entitlements
from billing.entitlements.services import feature_create, product_feature_attach
from billing.services.changes import subscription_change
from billing.services.subscriptions import (
    ItemSpec,
    subscription_cancel,
    subscription_create,
    subscription_pause,
)
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db
START = utc(2026, 3, 1)
QUANTITY = Feature.Kind.QUANTITY

# Catalog of every case: Basic grants dashboards (on) and 3 projects; Team grants dashboards, SSO
# and 10 projects PER SEAT; Storage add-on grants 50 GB per unit; Legacy grants nothing.
CASES = [
    # 1. Stripe's basic example: subscribing to a product grants its features.
    #    Basic x1 -> dashboards on, projects = 3.
    ("basic_subscriber", [("create", "basic", 1)], {"dashboards": None, "projects": 3}),
    # 2. Per-seat quantity: Team x4 -> projects = 10 x 4 = 40; SSO and dashboards on.
    ("team_four_seats", [("create", "team", 4)], {"dashboards": None, "projects": 40, "sso": None}),
    # 3. Two subscriptions add up (Chargebee: entitlements summed across items):
    #    Basic x1 (3) + Team x2 (20) -> projects = 23; dashboards once (on/off is an OR).
    (
        "two_subscriptions_add_up",
        [("create", "basic", 1), ("create", "team", 2)],
        {"dashboards": None, "projects": 23, "sso": None},
    ),
    # 4. Upgrade Basic -> Team x3 mid-period: projects 3 -> 30, SSO appears at once (Stripe: the
    #    summary is updated when the subscription is updated, not at the next invoice).
    (
        "upgrade_mid_period",
        [("create", "basic", 1), ("change", "team", 3)],
        {"dashboards": None, "projects": 30, "sso": None},
    ),
    # 5. Add-on units: Team x1 plus Storage x5 on the same subscription -> storage_gb = 50 x 5 = 250.
    (
        "add_on_units",
        [("create", "team", 1), ("change_with_addon", "storage", 5)],
        {"dashboards": None, "projects": 10, "sso": None, "storage_gb": 250},
    ),
    # 6. Immediate cancellation removes everything (Stripe: entitlements end with the subscription).
    ("canceled_now", [("create", "team", 2), ("cancel_now", None, None)], {}),
    # 7. Cancel at period end keeps the entitlements until the period ends.
    ("cancel_at_period_end", [("create", "basic", 1), ("cancel_end", None, None)], {"dashboards": None, "projects": 3}),
    # 8. A trial grants the features like an active subscription (Stripe: active or trialing).
    ("trial", [("trial", "team", 2)], {"dashboards": None, "projects": 20, "sso": None}),
    # 9. A paused subscription grants nothing (documented choice: paused = no service).
    ("paused", [("create", "team", 2), ("pause", None, None)], {}),
    # 10. A product without features grants nothing, and does not hide another's: Legacy x1 + Basic x1 -> Basic's.
    ("featureless_product", [("create", "legacy", 1), ("create", "basic", 1)], {"dashboards": None, "projects": 3}),
]


@pytest.fixture
def catalog(make_price, product_factory):
    features = {
        "dashboards": feature_create(data={"lookup_key": "dashboards", "name": "Dashboards"}),
        "sso": feature_create(data={"lookup_key": "sso", "name": "SSO"}),
        "projects": feature_create(data={"lookup_key": "projects", "name": "Projects", "kind": Feature.Kind.QUANTITY}),
        "storage_gb": feature_create(
            data={"lookup_key": "storage_gb", "name": "Storage", "kind": Feature.Kind.QUANTITY}
        ),
    }
    products = {name: product_factory(name=name.title()) for name in ("basic", "team", "storage", "legacy")}
    product_feature_attach(product=products["basic"], feature=features["dashboards"])
    product_feature_attach(product=products["basic"], feature=features["projects"], quantity=3)
    product_feature_attach(product=products["team"], feature=features["dashboards"])
    product_feature_attach(product=products["team"], feature=features["sso"])
    product_feature_attach(product=products["team"], feature=features["projects"], quantity=10, per_unit=True)
    product_feature_attach(product=products["storage"], feature=features["storage_gb"], quantity=50, per_unit=True)
    return {name: make_price(1000, product=product) for name, product in products.items()}


@pytest.mark.parametrize(("name", "steps", "expected"), CASES, ids=[case[0] for case in CASES])
def test_entitlement_case(name, steps, expected, make_customer, catalog):
    customer = make_customer()
    subscription = None
    at = START
    for action, price, quantity in steps:
        at += timedelta(days=1)
        if action in ("create", "trial"):
            subscription = subscription_create(
                customer=customer,
                items=[ItemSpec(catalog[price], quantity)],
                at=at,
                trial_days=14 if action == "trial" else 0,
            )
        elif action == "change":
            subscription_change(subscription=subscription, items=[ItemSpec(catalog[price], quantity)], at=at)
        elif action == "change_with_addon":
            kept = [ItemSpec(item.price, item.quantity) for item in subscription.items.select_related("price")]
            subscription_change(subscription=subscription, items=[*kept, ItemSpec(catalog[price], quantity)], at=at)
        elif action == "cancel_now":
            subscription_cancel(subscription=subscription, at=at, at_period_end=False)
        elif action == "cancel_end":
            subscription_cancel(subscription=subscription, at=at, at_period_end=True)
        elif action == "pause":
            subscription_pause(subscription=subscription, at=at)

    assert {e.lookup_key: e.quantity for e in customer_entitlements(customer_id=customer.pk)} == expected
