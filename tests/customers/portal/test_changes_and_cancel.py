"""Plan and quantity changes with their live preview, and cancellation through the reason form."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.models import InvoiceItem, Subscription
from config.events.models import DomainEvent
from tests.billing.payments.conftest import T0
from tests.customers.portal.conftest import fresh_step_up

pytestmark = pytest.mark.django_db


def preview(client, subscription, **params):
    url = f"/portal/subscriptions/{subscription.pk}/change/preview/"
    return client.get(url, params, HTTP_HX_REQUEST="true").content.decode()


def test_the_preview_follows_the_picked_plan_and_quantity(portal, account, plans):
    subscription = account[2]

    pro_two = preview(portal, subscription, price=plans["pro"].pk, quantity=2)
    pro_three = preview(portal, subscription, price=plans["pro"].pk, quantity=3)

    # At the very start of the period: credit 2 × 29.00, charge 2 × 79.00 → 100.00 + 20 % VAT now.
    assert "Temps non utilisé" in pro_two and "Temps restant" in pro_two  # worded in the customer's language
    assert "−58,00" in pro_two or "-58,00" in pro_two
    assert "120,00" in pro_two
    assert "214,80" in pro_three  # 3 × 79.00 − 58.00 = 179.00, + VAT
    assert "120,00" not in pro_three


def test_the_preview_explains_bad_input_instead_of_failing(portal, account, plans):
    subscription = account[2]

    assert "preview-error" in preview(portal, subscription, price=plans["pro"].pk, quantity=0)
    assert "preview-error" in preview(portal, subscription, price=plans["hidden"].pk, quantity=1)
    assert "preview-error" in preview(portal, subscription, price="nope", quantity=1)


def test_confirming_a_change_shows_the_new_plan_and_its_proration_lines(portal, account, plans, now):
    customer, user, subscription, _invoice = account
    now.move_to(T0 + timedelta(days=14))
    portal.force_login(user)  # the first session expired meanwhile

    confirmation = portal.post(
        f"/portal/subscriptions/{subscription.pk}/change/", {"price": plans["pro"].pk, "quantity": 2}
    )
    assert confirmation.status_code == 200 and 'id="confirm-form"' in confirmation.content.decode()
    assert not InvoiceItem.objects.filter(subscription=subscription, proration=True).exists()  # not yet

    response = portal.post(
        f"/portal/subscriptions/{subscription.pk}/change/", {"price": plans["pro"].pk, "quantity": 2, "confirmed": "1"}
    )

    assert response.status_code == 302
    done = portal.get(response["Location"])
    page = done.content.decode()
    assert "Pro" in page and "× 2" in page
    items = list(InvoiceItem.objects.filter(subscription=subscription, proration=True).order_by("amount"))
    assert len(items) == 2 and items[0].amount < 0 < items[1].amount
    for item in items:
        assert item.description in page
    assert items[0].invoice is not None  # always_invoice: invoiced (and collected) at once
    assert "Pro" in portal.get("/portal/").content.decode()
    assert DomainEvent.objects.filter(type="customer.subscription.updated", customer=customer).exists()


def test_a_change_to_a_plan_the_portal_does_not_offer_is_refused(portal, account, plans):
    subscription = account[2]

    response = portal.post(
        f"/portal/subscriptions/{subscription.pk}/change/",
        {"price": plans["hidden"].pk, "quantity": 1, "confirmed": "1"},
    )

    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert subscription.items.get().price == plans["starter"]


def test_cancel_asks_for_step_up_then_a_reason_then_ends_with_the_period(portal, account):
    subscription = account[2]
    url = f"/portal/subscriptions/{subscription.pk}/cancel/"

    assert portal.get(url)["Location"].startswith("/portal/verify/?next=")
    fresh_step_up(portal)
    assert 'name="reason"' in portal.get(url).content.decode()
    assert portal.post(url, {"reason": ""}).status_code == 200  # the reason is required

    response = portal.post(url, {"reason": "too_expensive", "comment": "Budget cuts"})

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end and subscription.status == Subscription.Status.ACTIVE
    assert subscription.cancellation_reason == "too_expensive: Budget cuts"


def test_a_plan_set_to_cancel_now_ends_at_once(portal, account, plans):
    product = plans["starter"].product
    product.metadata = {"portal_cancel": "now"}
    product.save()
    subscription = account[2]
    fresh_step_up(portal)

    portal.post(f"/portal/subscriptions/{subscription.pk}/cancel/", {"reason": "unused"})

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
