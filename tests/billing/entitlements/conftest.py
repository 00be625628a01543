"""Fixtures of the entitlement tests: the billing services' world (tests/billing/services/conftest.py)."""

from __future__ import annotations

import pytest

from billing.entitlements.models import Feature
from billing.entitlements.services import feature_create
from tests.api.conftest import _fresh_cache, api, api_read, billing_world, make_key, sandbox_api  # noqa: F401
from tests.billing.services.conftest import billing_brand, make_customer, make_metered_price, make_price  # noqa: F401


@pytest.fixture
def make_feature(db):
    def make(lookup_key: str, *, kind: str = Feature.Kind.BOOLEAN, **fields) -> Feature:
        return feature_create(
            data={"lookup_key": lookup_key, "name": fields.pop("name", lookup_key.title()), "kind": kind, **fields}
        )

    return make
