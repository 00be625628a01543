"""Features, product features and a customer's entitlements over the API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.entitlements.models import Feature
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create
from config.modes import livemode_scope
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def pro(billing_world):
    customer, price = billing_world
    return customer, price


def _feature(api, **body):
    response = api.post("/api/v1/features", {"name": body.get("lookup_key", "x").title(), **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_feature_grant_and_customer_entitlements_round_trip(api, pro):
    customer, price = pro
    sso = _feature(api, lookup_key="sso")
    projects = _feature(api, lookup_key="projects", kind="quantity", unit_label="project")
    product = f"prod_{price.product_id}"
    assert api.post(f"/api/v1/products/{product}/features", {"feature": sso["id"]}, format="json").status_code == 201
    grant = api.post(
        f"/api/v1/products/{product}/features",
        {"feature": projects["id"], "quantity": 10, "per_unit": True},
        format="json",
    )
    assert grant.status_code == 201, grant.content
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(price, 3)], at=datetime(2026, 1, 1, tzinfo=UTC), trial_days=0
    )

    response = api.get(f"/api/v1/customers/cus_{customer.pk}/entitlements")

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["customer"] == f"cus_{customer.pk}"
    assert [(row["lookup_key"], row["kind"], row["quantity"]) for row in body["data"]] == [
        ("projects", "quantity", 30),
        ("sso", "boolean", None),
    ]
    assert body["data"][0]["feature"] == projects["id"]

    listed = {
        row["feature"]["lookup_key"]: row for row in api.get(f"/api/v1/products/{product}/features").json()["data"]
    }
    assert set(listed) == {"sso", "projects"} and listed["projects"]["quantity"] == 10

    # Taking SSO away from the product takes it away from the customer at once.
    assert api.delete(f"/api/v1/products/{product}/features/{listed['sso']['id']}").status_code == 204
    assert [
        row["lookup_key"] for row in api.get(f"/api/v1/customers/cus_{customer.pk}/entitlements").json()["data"]
    ] == ["projects"]
    subscription_cancel(subscription=subscription, at=datetime(2026, 1, 5, tzinfo=UTC), at_period_end=False)
    assert api.get(f"/api/v1/customers/cus_{customer.pk}/entitlements").json()["data"] == []


def test_unhappy_paths(api, api_read, pro):
    customer, price = pro
    product = f"prod_{price.product_id}"
    assert_problem(
        api.post("/api/v1/features", {"lookup_key": "sso", "name": "SSO", "colour": "red"}, format="json"),
        400,
        "unknown_parameter",
    )
    assert_problem(api.post("/api/v1/features", {"lookup_key": "not a slug", "name": "x"}, format="json"), 400)
    assert_problem(
        api.post("/api/v1/features", {"lookup_key": "sso", "name": "x", "kind": "maybe"}, format="json"), 400
    )
    sso = _feature(api, lookup_key="sso")
    assert_problem(
        api.post("/api/v1/features", {"lookup_key": "sso", "name": "again"}, format="json"), 422, "duplicate_lookup_key"
    )
    assert_problem(
        api.post(f"/api/v1/products/{product}/features", {"feature": sso["id"], "quantity": 5}, format="json"),
        422,
        "quantity_not_allowed",
    )
    assert_problem(
        api.post(f"/api/v1/products/{product}/features", {"feature": sso["id"], "quantity": 10**15}, format="json"), 400
    )
    assert_problem(api.post(f"/api/v1/products/{product}/features", {"feature": "feat_999999"}, format="json"), 400)
    assert_problem(
        api.post(f"/api/v1/products/{product}/features", {"feature": sso["id"], "extra": 1}, format="json"), 400
    )
    assert_problem(api.post("/api/v1/products/prod_999999/features", {"feature": sso["id"]}, format="json"), 404)
    assert_problem(api.get("/api/v1/customers/cus_999999/entitlements"), 404)
    assert_problem(api_read.post("/api/v1/features", {"lookup_key": "audit", "name": "Audit"}, format="json"), 403)


def test_a_sandbox_key_sees_test_mode_only(api, sandbox_api, pro, customer_factory):
    customer, _price = pro
    _feature(api, lookup_key="sso")
    sandbox = sandbox_api.post("/api/v1/features", {"lookup_key": "sso", "name": "SSO (test)"}, format="json")
    assert sandbox.status_code == 201  # the same lookup key in the other mode
    assert [row["name"] for row in sandbox_api.get("/api/v1/features").json()["data"]] == ["SSO (test)"]
    assert_problem(sandbox_api.get(f"/api/v1/customers/cus_{customer.pk}/entitlements"), 404)
    with livemode_scope(False):
        test_customer = customer_factory()
    assert sandbox_api.get(f"/api/v1/customers/cus_{test_customer.pk}/entitlements").status_code == 200
    assert Feature.objects.filter(livemode=False).count() == 1


def test_the_entitlements_check_is_a_handful_of_queries_whatever_the_customer_has(
    api, pro, django_assert_max_num_queries, product_factory, make_price
):
    customer, price = pro
    for n in range(5):
        feature = _feature(api, lookup_key=f"f{n}", kind="quantity")
        api.post(
            f"/api/v1/products/prod_{price.product_id}/features",
            {"feature": feature["id"], "quantity": n},
            format="json",
        )
    for _ in range(3):
        subscription_create(customer=customer, items=[ItemSpec(price, 2)], at=datetime(2026, 1, 1, tzinfo=UTC))

    # The key's lookup, its last use, then ONE query (the customer in the key's mode joined to its
    # entitlements): never one per subscription or feature.
    with django_assert_max_num_queries(3):
        response = api.get(f"/api/v1/customers/cus_{customer.pk}/entitlements")

    assert response.status_code == 200 and len(response.json()["data"]) == 5
    # wall clock and the thread's CPU time, which cannot exceed it
    metrics = dict(part.strip().split(";dur=") for part in response["Server-Timing"].split(","))
    assert set(metrics) == {"app", "cpu"}
    assert 0 <= float(metrics["cpu"]) <= float(metrics["app"]) + 0.01


def test_the_direct_representation_is_the_serializer_s():
    # The hot path builds its JSON directly; the serializer is the documented shape: both agree.
    from billing.entitlements.selectors import Entitlement
    from billing.entitlements.serializers import EntitlementListSerializer, entitlement_list_representation

    entitlements = [
        Entitlement(
            feature_id=7, lookup_key="api", name="API", kind=Feature.Kind.BOOLEAN, unit_label="", quantity=None
        ),
        Entitlement(
            feature_id=9, lookup_key="seats", name="Seats", kind=Feature.Kind.QUANTITY, unit_label="seat", quantity=12
        ),
    ]
    for listed in (entitlements, []):
        direct = entitlement_list_representation(customer_id=42, entitlements=listed)
        assert direct == EntitlementListSerializer({"customer": "cus_42", "data": listed}).data
