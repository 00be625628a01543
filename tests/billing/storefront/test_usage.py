"""A payment link's usage count: its checkout sessions that completed (not the started or expired ones)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.checkout.models import CheckoutSession
from billing.checkout.services import checkout_session_expire
from billing.storefront.selectors import payment_link_usage_count, payment_links_with_usage
from billing.storefront.services import LinkItemSpec, payment_link_create
from tests.billing.checkout.helpers import pay

pytestmark = pytest.mark.django_db

BUYER = {
    "is_business": False,
    "legal_name": "Camille Martin",
    "email": "camille@martin.example",
    "country": "FR",
}


@pytest.fixture
def link(shop_brand, catalogue, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    return payment_link_create(
        brand=shop_brand,
        livemode=True,
        name="Starter",
        mode="subscription",
        items=[LinkItemSpec(price=catalogue["flat"][0])],
    )


def _start(client, link) -> CheckoutSession:
    before = set(CheckoutSession.objects.values_list("pk", flat=True))
    assert client.post(reverse("storefront:buy", args=[link.public_id])).status_code == 302
    return CheckoutSession.objects.exclude(pk__in=before).get()


def test_only_completed_sessions_count(client, link, api):
    paid = _start(client, link)
    _start(client, link)  # started, never paid
    expired = _start(client, link)
    checkout_session_expire(session=expired)

    pay(paid, {**BUYER})

    assert payment_link_usage_count(link=link) == 1
    assert payment_links_with_usage().get(pk=link.pk).usage_count == 1
    assert api.get(f"/api/v1/payment_links/{link.public_id}").json()["usage_count"] == 1


def test_sessions_of_another_origin_with_the_same_id_do_not_count(link, make_session_for_table):
    session = make_session_for_table(origin_id=link.public_id)
    pay(session, {**BUYER, "email": "other@example.org"})

    assert payment_link_usage_count(link=link) == 0


@pytest.fixture
def make_session_for_table(shop_brand, catalogue):
    from billing.checkout.services import checkout_session_create

    def make(**overrides):
        return checkout_session_create(
            brand=shop_brand,
            livemode=True,
            mode="subscription",
            line_items=[(catalogue["flat"][0], 1)],
            success_url="https://shop.example/ok",
            cancel_url="https://shop.example/back",
            origin="pricing_table",
            **overrides,
        )

    return make


def test_the_thank_you_page_is_branded_and_says_complete_only_for_a_completed_session(client, link, shop_brand):
    session = _start(client, link)
    url = reverse("storefront:thanks")

    before = client.get(url, {"session_id": session.public_id}).content.decode()
    pay(session, {**BUYER})
    after = client.get(url, {"session_id": session.public_id}).content.decode()
    unknown = client.get(url, {"session_id": "cs_live_nope"}).content.decode()

    assert "Order status" in before and "Your order is complete" not in before
    assert "Your order is complete" in after and shop_brand.name in after
    assert "Order status" in unknown


def test_a_brand_without_a_logo_has_no_logo_url(client, shop_brand):
    assert client.get(reverse("storefront:brand_logo", args=[shop_brand.slug])).status_code == 404
