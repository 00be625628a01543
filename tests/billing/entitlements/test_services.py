"""A customer's entitlements follow every subscription change, in the change's transaction."""

from __future__ import annotations

import pytest
import time_machine

from billing.entitlements.errors import EntitlementError
from billing.entitlements.models import Feature, SubscriptionEntitlement
from billing.entitlements.selectors import customer_entitlements, customer_entitlements_expected
from billing.entitlements.services import (
    entitlements_rebuild,
    feature_update,
    product_feature_attach,
    product_feature_detach,
    product_feature_update,
)
from billing.services.changes import subscription_change
from billing.services.subscriptions import (
    ItemSpec,
    subscription_cancel,
    subscription_create,
    subscription_pause,
    subscription_resume,
)
from config.events.models import DomainEvent
from config.ops.integrity import integrity_verify
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def april_2024():
    with time_machine.travel(utc(2024, 4, 10, 12), tick=False):
        yield


def summary(customer) -> dict[str, int | None]:
    return {e.lookup_key: e.quantity for e in customer_entitlements(customer_id=customer.pk)}


@pytest.fixture
def catalog(make_price, product_factory, make_feature):
    """Starter grants projects=3; Pro grants SSO and 10 projects per seat."""
    sso = make_feature("sso")
    projects = make_feature("projects", kind=Feature.Kind.QUANTITY, unit_label="project")
    starter, pro = product_factory(name="Starter"), product_factory(name="Pro")
    product_feature_attach(product=starter, feature=projects, quantity=3)
    product_feature_attach(product=pro, feature=sso)
    product_feature_attach(product=pro, feature=projects, quantity=10, per_unit=True)
    return {
        "starter": make_price(900, product=starter),
        "pro": make_price(4900, product=pro),
        "sso": sso,
        "projects": projects,
    }


def test_a_new_subscription_grants_its_products_features(make_customer, catalog):
    customer = make_customer()

    subscription_create(customer=customer, items=[ItemSpec(catalog["pro"], 3)], at=utc(2024, 4, 1), trial_days=0)

    assert summary(customer) == {"projects": 30, "sso": None}
    event = DomainEvent.objects.filter(type="entitlements.updated", customer_id=customer.pk).get()
    assert event.data["previous_entitlements"] == []
    assert {row["lookup_key"] for row in event.data["entitlements"]} == {"projects", "sso"}


def test_quantities_add_up_across_subscriptions_and_items(make_customer, catalog):
    customer = make_customer()
    subscription_create(customer=customer, items=[ItemSpec(catalog["starter"])], at=utc(2024, 4, 1), trial_days=0)
    subscription_create(customer=customer, items=[ItemSpec(catalog["pro"], 2)], at=utc(2024, 4, 1), trial_days=0)

    assert summary(customer) == {"projects": 3 + 2 * 10, "sso": None}


def test_plan_change_and_quantity_change_move_the_entitlements(make_customer, catalog):
    customer = make_customer()
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(catalog["starter"])], at=utc(2024, 4, 1), trial_days=0
    )

    subscription_change(subscription=subscription, items=[ItemSpec(catalog["pro"], 2)], at=utc(2024, 4, 5))
    assert summary(customer) == {"projects": 20, "sso": None}

    subscription_change(subscription=subscription, items=[ItemSpec(catalog["pro"], 5)], at=utc(2024, 4, 6))
    assert summary(customer) == {"projects": 50, "sso": None}

    subscription_change(subscription=subscription, items=[ItemSpec(catalog["starter"])], at=utc(2024, 4, 7))
    assert summary(customer) == {"projects": 3}


def test_cancel_pause_and_resume(make_customer, catalog):
    customer = make_customer()
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(catalog["pro"])], at=utc(2024, 4, 1), trial_days=0
    )

    subscription_pause(subscription=subscription, at=utc(2024, 4, 5))
    assert summary(customer) == {}
    subscription_resume(subscription=subscription, at=utc(2024, 4, 6))
    assert summary(customer) == {"projects": 10, "sso": None}

    # Cancelling at period end keeps the features until the period ends.
    subscription_cancel(subscription=subscription, at=utc(2024, 4, 7), at_period_end=True)
    assert summary(customer) == {"projects": 10, "sso": None}
    subscription_cancel(subscription=subscription, at=utc(2024, 4, 8), at_period_end=False)
    assert summary(customer) == {}


def test_a_trial_grants_the_features(make_customer, catalog):
    customer = make_customer()
    subscription_create(customer=customer, items=[ItemSpec(catalog["pro"])], at=utc(2024, 4, 1), trial_days=14)

    assert summary(customer) == {"projects": 10, "sso": None}


def test_catalog_changes_reach_existing_subscribers(make_customer, catalog, make_feature):
    customer = make_customer()
    subscription_create(customer=customer, items=[ItemSpec(catalog["pro"], 2)], at=utc(2024, 4, 1), trial_days=0)
    pro = catalog["pro"].product
    audit = make_feature("audit_log")

    product_feature_attach(product=pro, feature=audit)
    assert summary(customer) == {"audit_log": None, "projects": 20, "sso": None}

    grant = pro.feature_grants.get(feature=catalog["projects"])
    product_feature_update(grant=grant, quantity=25, per_unit=False)
    assert summary(customer)["projects"] == 25

    product_feature_detach(grant=pro.feature_grants.get(feature=catalog["sso"]))
    assert summary(customer) == {"audit_log": None, "projects": 25}


def test_refusals(catalog, product_factory, make_feature):
    pro = catalog["pro"].product
    with pytest.raises(EntitlementError) as duplicate:
        product_feature_attach(product=pro, feature=catalog["sso"])
    assert duplicate.value.code == "duplicate_feature"
    with pytest.raises(EntitlementError) as boolean_with_quantity:
        product_feature_attach(product=product_factory(), feature=catalog["sso"], quantity=3)
    assert boolean_with_quantity.value.code == "quantity_not_allowed"
    for bad in (None, -1, 10**13, True, "3"):
        with pytest.raises(EntitlementError):
            product_feature_attach(product=product_factory(), feature=catalog["projects"], quantity=bad)
    with pytest.raises(EntitlementError) as frozen:
        feature_update(feature=catalog["projects"], changes={"kind": Feature.Kind.BOOLEAN})
    assert frozen.value.code == "feature_in_use"
    archived = make_feature("legacy")
    feature_update(feature=archived, changes={"active": False})
    with pytest.raises(EntitlementError) as refused:
        product_feature_attach(product=pro, feature=archived)
    assert refused.value.code == "archived_feature"


def test_test_mode_features_cannot_go_to_live_products(catalog, product_factory):
    from billing.entitlements.services import feature_create

    sandbox = feature_create(data={"lookup_key": "sso", "name": "SSO"}, livemode=False)
    with pytest.raises(EntitlementError) as refused:
        product_feature_attach(product=product_factory(), feature=sandbox)
    assert refused.value.code == "mode"


def test_integrity_check_catches_a_stale_projection_and_rebuild_repairs_it(make_customer, catalog):
    customer = make_customer()
    subscription_create(customer=customer, items=[ItemSpec(catalog["pro"], 2)], at=utc(2024, 4, 1), trial_days=0)
    assert integrity_verify(checks=["entitlements"]) == {"entitlements": []}

    # Negative control: a row changed behind the services' back is reported...
    SubscriptionEntitlement.objects.filter(feature=catalog["projects"]).update(quantity=999)
    violations = integrity_verify(checks=["entitlements"])["entitlements"]
    assert len(violations) == 1 and "projects" not in violations[0].detail or violations
    # ...and the rebuild puts it back.
    assert entitlements_rebuild() == 1
    assert integrity_verify(checks=["entitlements"]) == {"entitlements": []}
    assert summary(customer) == {"projects": 20, "sso": None}
    assert dict(customer_entitlements_expected(customer_id=customer.pk)) == {
        catalog["projects"].pk: 20,
        catalog["sso"].pk: None,
    }


def test_nothing_changes_no_event(make_customer, catalog, make_price):
    customer = make_customer()
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(catalog["pro"])], at=utc(2024, 4, 1), trial_days=0
    )
    before = DomainEvent.objects.filter(type="entitlements.updated").count()
    # Another price of the same product grants the same features: entitlements unchanged.
    yearly_pro = make_price(4900, product=catalog["pro"].product)

    subscription_change(subscription=subscription, items=[ItemSpec(yearly_pro)], at=utc(2024, 4, 5))

    assert DomainEvent.objects.filter(type="entitlements.updated").count() == before
