"""Issue 16, cycles, over the API: `billing_cycle_anchor_config` and `proration_behavior` on the
create and its preview, `billing_timing` and `minimum_amount` on prices; and their refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import time_machine

from billing.models import Price, Subscription
from invoices.models import Invoice
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 4, 10, 10, tzinfo=UTC)  # noon in Paris, the customers' zone
MONTHLY = {"kind": "interval", "unit": "month", "count": 1}


def _body(customer, price, **extra):
    return {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}"}], **extra}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_create_with_a_rule_and_no_proration_bills_from_the_first_date(api, billing_world):
    customer, price = billing_world
    rule = {"day_of_month": 31, "hour": 0, "minute": 0, "second": 0}

    with time_machine.travel(NOW, tick=False):
        response = api.post(
            "/api/v1/subscriptions",
            _body(customer, price, billing_cycle_anchor_config=rule, proration_behavior="none"),
            format="json",
        )

    assert response.status_code == 201, response.content
    body = response.json()
    # 30 April 00:00 in Paris (UTC+2): day 31 in a 30-day month.
    assert _instant(body["current_period_end"]) == datetime(2027, 4, 29, 22, tzinfo=UTC)
    assert _instant(body["free_until"]) == datetime(2027, 4, 29, 22, tzinfo=UTC)
    assert body["billing_cycle_anchor_config"] == {**rule, "month": None}
    assert Invoice.objects.get(subscription_id=Subscription.objects.get().pk).total == 0


def test_the_create_preview_follows_the_rule(api, billing_world):
    customer, price = billing_world
    body = _body(
        customer, price, billing_cycle_anchor_config={"day_of_month": 1}, proration_behavior="create_prorations"
    )

    with time_machine.travel(NOW, tick=False):
        preview = api.post("/api/v1/subscriptions/preview", body, format="json")
        created = api.post("/api/v1/subscriptions", body, format="json")

    assert preview.status_code == 200, preview.content
    assert preview.json()["current_period_end"] == created.json()["current_period_end"]
    # [10 Apr 12:00, 1 May 12:00 Paris) is 21 of 30 days: 2900 x 21/30 = 2030, +20 % VAT = 2436.
    assert preview.json()["first_invoice"]["total"] == Invoice.objects.get().total == 2436


def test_an_anchor_and_a_rule_together_are_refused(api, billing_world):
    customer, price = billing_world

    response = api.post(
        "/api/v1/subscriptions",
        _body(
            customer,
            price,
            billing_cycle_anchor="2027-05-01T00:00:00Z",
            billing_cycle_anchor_config={"day_of_month": 1},
        ),
        format="json",
    )

    problem = assert_problem(response, 422, "anchor_and_anchor_config")
    assert problem["field"] == "billing_cycle_anchor_config"


def test_a_rule_on_a_weekly_price_is_refused_naming_the_parameter(api, billing_world, price_factory):
    customer, _ = billing_world
    weekly = price_factory(unit_amount=500, cycle={"kind": "interval", "unit": "week", "count": 1})

    response = api.post(
        "/api/v1/subscriptions", _body(customer, weekly, billing_cycle_anchor_config={"day_of_month": 1}), format="json"
    )

    problem = assert_problem(response, 422, "invalid_anchor_config")
    assert problem["field"] == "billing_cycle_anchor_config"


def test_a_month_on_a_monthly_price_is_refused(api, billing_world):
    customer, price = billing_world

    response = api.post(
        "/api/v1/subscriptions/preview",
        _body(customer, price, billing_cycle_anchor_config={"day_of_month": 1, "month": 3}),
        format="json",
    )

    problem = assert_problem(response, 422, "invalid_anchor_config")
    assert problem["field"] == "billing_cycle_anchor_config.month"


@pytest.mark.parametrize(
    ("rule", "status", "code"),
    [
        ({"day_of_month": 32}, 400, None),
        ({"day_of_month": 1, "hour": 24}, 400, None),
        ({"month": 2}, 400, None),
        ({"day_of_month": 1, "days": 3}, 400, "unknown_parameter"),
    ],
)
def test_malformed_rules_are_refused(api, billing_world, rule, status, code):
    customer, price = billing_world

    response = api.post(
        "/api/v1/subscriptions", _body(customer, price, billing_cycle_anchor_config=rule), format="json"
    )

    problem = assert_problem(response, status)
    assert (problem.get("field") or "").startswith("billing_cycle_anchor_config")
    if code is not None:  # the nested rule names the parameter it does not know
        assert code in json.dumps(problem) and problem["field"] == "billing_cycle_anchor_config.days"
    assert not Subscription.objects.exists()


def test_an_unknown_first_period_behaviour_is_refused(api, billing_world):
    customer, price = billing_world

    response = api.post(
        "/api/v1/subscriptions", _body(customer, price, proration_behavior="always_invoice"), format="json"
    )

    problem = assert_problem(response, 400)
    assert problem["field"] == "proration_behavior"


def test_a_price_billed_in_arrears_and_a_metered_minimum(api, product_factory, meter_factory):
    product = product_factory()
    arrears = api.post(
        "/api/v1/prices",
        {
            "product": f"prod_{product.pk}",
            "currency": "EUR",
            "unit_amount": "1000",
            "cycle": MONTHLY,
            "billing_timing": "in_arrears",
        },
        format="json",
    )
    meter = meter_factory()
    metered = api.post(
        "/api/v1/prices",
        {
            "product": f"prod_{product.pk}",
            "currency": "EUR",
            "unit_amount": "0.5",
            "cycle": MONTHLY,
            "usage_type": "metered",
            "meter": f"mtr_{meter.pk}",
            "minimum_amount": 5000,
        },
        format="json",
    )

    assert arrears.status_code == 201, arrears.content
    assert arrears.json()["billing_timing"] == "in_arrears" and arrears.json()["minimum_amount"] == 0
    assert metered.status_code == 201, metered.content
    assert Price.objects.get(pk=int(metered.json()["id"].split("_")[1])).minimum_amount == 5000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"billing_timing": "in_arrears", "type": "one_time", "cycle": None}, "billing_timing"),
        ({"minimum_amount": 100}, "minimum_amount"),
        ({"billing_timing": "later"}, "billing_timing"),
    ],
)
def test_refused_price_timings_and_minimums(api, product_factory, change, field):
    body = {"product": f"prod_{product_factory().pk}", "currency": "EUR", "unit_amount": "100", "cycle": MONTHLY}

    response = api.post("/api/v1/prices", {**body, **change}, format="json")

    assert response.status_code in (400, 422), response.content
    assert assert_problem(response, response.status_code)["field"] == field
    assert not Price.objects.exists()
