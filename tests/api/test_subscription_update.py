"""PATCH /api/v1/subscriptions/{id}: Stripe's subscription update, parameter by parameter."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Coupon, InvoiceItem, Subscription, SubscriptionItem
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def subscribe(api, customer, price, **extra):
    response = api.post(
        "/api/v1/subscriptions",
        {"customer": f"cus_{customer.pk}", "items": [{"price": f"price_{price.pk}", "quantity": 2}], **extra},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def iso(moment):
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@pytest.fixture
def subscribed(api, billing_world):
    customer, price = billing_world
    return subscribe(api, customer, price)


def patch(api, subscription, body, **headers):
    return api.patch(f"/api/v1/subscriptions/{subscription['id']}", body, format="json", **headers)


def test_quantity_change_by_item_id(api, subscribed):
    item_id = subscribed["items"][0]["id"]

    response = patch(api, subscribed, {"items": [{"id": item_id, "quantity": 5}], "proration_behavior": "none"})

    assert response.status_code == 200, response.content
    assert response.json()["items"][0]["quantity"] == 5
    assert response.json()["pending_update"] is None


def test_add_a_price_and_delete_an_item(api, subscribed, price_factory):
    extra = price_factory(unit_amount=1000)
    item_id = subscribed["items"][0]["id"]

    added = patch(api, subscribed, {"items": [{"price": f"price_{extra.pk}"}], "proration_behavior": "none"})
    assert added.status_code == 200, added.content
    assert len(added.json()["items"]) == 2

    removed = patch(api, subscribed, {"items": [{"id": item_id, "deleted": True}], "proration_behavior": "none"})
    assert removed.status_code == 200, removed.content
    assert [item["price"] for item in removed.json()["items"]] == [f"price_{extra.pk}"]


def test_always_invoice_issues_the_difference_at_once(api, subscribed):
    item_id = subscribed["items"][0]["id"]

    response = patch(
        api, subscribed, {"items": [{"id": item_id, "quantity": 3}], "proration_behavior": "always_invoice"}
    )

    assert response.status_code == 200, response.content
    invoices = api.get("/api/v1/invoices", {"subscription": subscribed["id"]}).json()["data"]
    assert len(invoices) == 2  # the first one, and the update's


def test_metadata_merge_and_removal(api, subscribed):
    patch(api, subscribed, {"metadata": {"team": "a", "region": "eu"}})

    response = patch(api, subscribed, {"metadata": {"team": ""}})

    assert response.status_code == 200, response.content
    assert response.json()["metadata"] == {"region": "eu"}


def test_cancel_at_then_undo(api, subscribed):
    later = timezone.now() + timedelta(days=90)

    scheduled = patch(api, subscribed, {"cancel_at": iso(later)})
    assert scheduled.status_code == 200, scheduled.content
    assert scheduled.json()["cancel_at"] == iso(later)

    undone = patch(api, subscribed, {"cancel_at": None})
    assert undone.status_code == 200, undone.content
    assert undone.json()["cancel_at"] is None and undone.json()["status"] == "active"


def test_cancel_at_period_end_flag(api, subscribed):
    on = patch(api, subscribed, {"cancel_at_period_end": True})
    assert on.json()["cancel_at_period_end"] is True
    off = patch(api, subscribed, {"cancel_at_period_end": False})
    assert off.json()["cancel_at_period_end"] is False


def test_adding_a_trial_to_an_active_subscription(api, subscribed):
    trial_end = timezone.now() + timedelta(days=20)

    response = patch(api, subscribed, {"trial_end": iso(trial_end), "proration_behavior": "create_prorations"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "trialing" and body["trial_end"] == iso(trial_end)
    assert body["current_period_end"] == iso(trial_end)
    pk = int(subscribed["id"].split("_")[1])
    assert sum(item.amount for item in InvoiceItem.objects.filter(subscription_id=pk, proration=True)) < 0


def test_trial_end_now_ends_a_trial(api, billing_world):
    customer, price = billing_world
    trialing = subscribe(api, customer, price, trial_days=14)

    response = patch(api, trialing, {"trial_end": "now"})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"


def test_billing_cycle_anchor_now(api, subscribed):
    response = patch(api, subscribed, {"billing_cycle_anchor": "now"})

    assert response.status_code == 200, response.content
    assert response.json()["billing_cycle_anchor"] == response.json()["current_period_start"]


def test_collection_method_and_terms(api, subscribed):
    response = patch(api, subscribed, {"collection_method": "send_invoice", "days_until_due": 14})

    assert response.status_code == 200, response.content
    assert response.json()["collection_method"] == "send_invoice" and response.json()["days_until_due"] == 14


def test_coupon_add_and_remove(api, subscribed):
    coupon = Coupon.objects.create(name="Loyal", percent_off=Decimal(10), duration="forever")

    added = patch(api, subscribed, {"coupon": f"coupon_{coupon.pk}"})
    assert added.status_code == 200, added.content
    assert added.json()["coupon"] == f"coupon_{coupon.pk}"

    removed = patch(api, subscribed, {"coupon": None})
    assert removed.json()["coupon"] is None


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"colour": "blue"}, "colour", "unknown_parameter"),
        ({"items": [{"id": "si_1", "quantity": 2, "size": 3}]}, "items", None),
        ({"items": [{"price": "price_1", "quantity": 0}]}, "items", None),
        ({"items": [{"price": "price_1", "quantity": 10**12}]}, "items", None),
        ({"proration_behavior": "sometimes"}, "proration_behavior", None),
        ({"days_until_due": 9999}, "days_until_due", None),
        ({"trial_end": "tomorrow"}, "trial_end", None),
        ({"billing_cycle_anchor": "later"}, "billing_cycle_anchor", None),
        ({"metadata": {"k": "v" * 501}}, "metadata", None),
    ],
)
def test_malformed_parameters_are_400_naming_the_field(api, subscribed, body, field, code):
    response = patch(api, subscribed, body)

    problem = assert_problem(response, 400)
    assert field in str(problem), problem
    if code is not None:
        assert code in str(problem)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"trial_end": "2000-01-01T00:00:00Z"}, "trial_end_past"),
        ({"cancel_at": "2000-01-01T00:00:00Z"}, "cancel_at_past"),
        ({"cancel_at": "2999-01-01T00:00:00Z"}, "cancel_at_too_far"),
        ({"cancel_at": iso(timezone.now() + timedelta(days=90)), "cancel_at_period_end": True}, "parameter_conflict"),
        ({"billing_cycle_anchor": "now", "trial_end": "2099-01-01T00:00:00Z"}, "parameter_conflict"),
        ({"days_until_due": 10}, "terms"),
        ({"items": [{"id": "si_999999", "quantity": 2}]}, None),
    ],
)
def test_business_refusals_are_problems_with_a_code(api, subscribed, body, code):
    response = patch(api, subscribed, body)

    problem = assert_problem(response, 400)
    if code is not None:
        assert problem["code"] == code


def test_trial_end_now_on_an_active_subscription_is_409(api, subscribed):
    assert_problem(patch(api, subscribed, {"trial_end": "now"}), 409, "not_trialing")


def test_a_canceled_subscription_is_409(api, subscribed):
    api.post(f"/api/v1/subscriptions/{subscribed['id']}/cancel", {"at_period_end": False}, format="json")

    assert_problem(patch(api, subscribed, {"metadata": {"a": "b"}}), 409, "subscription_canceled")


def test_nothing_changes_when_one_part_is_refused(api, subscribed):
    item_id = subscribed["items"][0]["id"]

    response = patch(api, subscribed, {"items": [{"id": item_id, "quantity": 7}], "cancel_at": "2000-01-01T00:00Z"})

    assert_problem(response, 400, "cancel_at_past")
    assert SubscriptionItem.objects.get(pk=int(item_id.split("_")[1])).quantity == 2


def test_another_modes_subscription_is_not_found(api, sandbox_api, subscribed):
    response = sandbox_api.patch(f"/api/v1/subscriptions/{subscribed['id']}", {"metadata": {"a": "b"}}, format="json")

    assert response.status_code == 404


def test_another_modes_price_is_refused(api, subscribed, price_factory):
    test_price = price_factory(unit_amount=1000, livemode=False)

    response = patch(api, subscribed, {"items": [{"price": f"price_{test_price.pk}"}]})

    assert_problem(response, 400)
    assert len(Subscription.objects.get(pk=int(subscribed["id"].split("_")[1])).items.all()) == 1


def test_a_read_only_key_cannot_update(api_read, subscribed):
    assert patch(api_read, subscribed, {"metadata": {"a": "b"}}).status_code == 403


def test_the_same_idempotency_key_replays_the_first_response(api, subscribed):
    item_id = subscribed["items"][0]["id"]
    body = {"items": [{"id": item_id, "quantity": 3}], "proration_behavior": "always_invoice"}

    first = patch(api, subscribed, body, HTTP_IDEMPOTENCY_KEY="upd-1")
    second = patch(api, subscribed, body, HTTP_IDEMPOTENCY_KEY="upd-1")

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    invoices = api.get("/api/v1/invoices", {"subscription": subscribed["id"]}).json()["data"]
    assert len(invoices) == 2  # one update invoice, not two


def test_preview_update_writes_nothing_and_matches_the_update(api, subscribed):
    item_id = subscribed["items"][0]["id"]
    body = {"items": [{"id": item_id, "quantity": 3}], "proration_behavior": "always_invoice"}

    preview = api.post(f"/api/v1/subscriptions/{subscribed['id']}/preview_update", body, format="json")

    assert preview.status_code == 200, preview.content
    assert SubscriptionItem.objects.get(pk=int(item_id.split("_")[1])).quantity == 2
    immediate = preview.json()["immediate_invoice"]
    assert immediate["total"] > 0
    patch(api, subscribed, body)
    invoices = api.get("/api/v1/invoices", {"subscription": subscribed["id"]}).json()["data"]
    assert immediate["total"] in [invoice["total"] for invoice in invoices]


def test_preview_update_refuses_what_it_cannot_preview(api, subscribed):
    response = api.post(
        f"/api/v1/subscriptions/{subscribed['id']}/preview_update", {"metadata": {"a": "b"}}, format="json"
    )

    assert_problem(response, 400, "preview_unsupported")
