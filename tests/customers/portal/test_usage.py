"""The portal's usage page: usage and cost so far, usage alerts, features included (issue 16)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.entitlements.services import feature_create, product_feature_attach
from billing.models import Meter, Price
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.usage import UsageEventInput, usage_events_record
from billing.services.usage_thresholds import usage_threshold_create
from tests.billing.payments.conftest import T0

pytestmark = pytest.mark.django_db


def test_the_customer_sees_usage_cost_alerts_and_features(portal, account, make_price, product_factory, now):
    customer = account[0]
    meter = Meter.objects.create(key="api_calls", name="API calls", aggregation=Meter.Aggregation.SUM)
    calls = make_price("0.5", product=product_factory(name="API"), usage_type=Price.UsageType.METERED, meter=meter)
    start = T0  # the wall clock stands still at T0 (the portal fixtures' `now`)
    subscription = subscription_create(customer=customer, items=[ItemSpec(calls)], at=start)
    usage_threshold_create(subscription=subscription, amount=10_000)
    now.move_to(T0 + timedelta(minutes=20))  # events from the future are refused: record them after
    usage_events_record(
        events=[
            UsageEventInput(
                customer_id=customer.pk,
                meter_key="api_calls",
                external_id=f"e{n}",
                value=Decimal(1500),
                timestamp=start + timedelta(minutes=5 * (n + 1)),
            )
            for n in range(2)
        ]
    )
    sso = feature_create(data={"lookup_key": "sso", "name": "Single sign-on"})
    product_feature_attach(product=account[2].items.get().price.product, feature=sso)

    response = portal.get(reverse("portal:usage"))

    assert response.status_code == 200
    body = response.content.decode()
    # 3,000 calls at half a cent = 15.00 EUR so far; the 100.00 EUR alert is 15 % reached.
    assert "3000" in body or "3 000" in body
    assert "15,00" in body and "100,00" in body
    assert '<progress max="100" value="15">' in body
    assert "Single sign-on" in body
    assert "1500" not in body  # money through the formatting helper, never minor units


def test_without_usage_the_page_says_so(portal):
    response = portal.get(reverse("portal:usage"))
    assert response.status_code == 200
    assert "usage-card" not in response.content.decode()
