"""The public pages: a pricing table (page, embed, script) and payment links."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from billing.checkout.models import CheckoutSession
from billing.entitlements.models import Feature, ProductFeature
from billing.models import Price
from billing.storefront.services import (
    LinkItemSpec,
    TableEntrySpec,
    payment_link_create,
    payment_link_deactivate,
    pricing_table_create,
    pricing_table_set_active,
)
from tests.billing.storefront.conftest import MONTH

pytestmark = pytest.mark.django_db


@pytest.fixture
def table(shop_brand, catalogue):
    flat, seat, tiered, volume = (catalogue[key] for key in ("flat", "seat", "tiered", "volume"))
    return pricing_table_create(
        brand=shop_brand,
        livemode=True,
        name="Plans",
        entries=[
            TableEntrySpec(monthly_price=flat[0], yearly_price=flat[1], features=("Email support", "1 project")),
            TableEntrySpec(monthly_price=seat[0], yearly_price=seat[1], highlighted=True),
            TableEntrySpec(monthly_price=tiered[0], yearly_price=tiered[1]),
            TableEntrySpec(monthly_price=volume[0]),
        ],
        trial_period_days=14,
    )


def _page(client, table, **params):
    response = client.get(reverse("storefront:pricing", args=[table.public_id]), params)
    assert response.status_code == 200, response.content
    return response.content.decode()


def _panel(html: str, interval: str) -> str:
    start = html.index(f'class="panel panel-{interval}')
    end = html.find('class="panel panel-', start + 10)
    return html[start : end if end > 0 else len(html)]


def test_the_pricing_page_shows_every_price_model_per_cycle_through_the_money_helper(client, table):
    html = _page(client, table)
    month, year = _panel(html, "month"), _panel(html, "year")

    assert "€15.00" in month and "per month" in month  # flat
    assert "€8.00" in month and "per seat" in month  # per seat
    assert month.count("From €9.00") == 2  # tiered graduated and volume: the first unit's price
    assert "€150.00" in year and "per year" in year
    assert "€80.00" in year and "From €9.00" in year
    assert "Not available yearly" in year  # the volume plan has no yearly price
    assert "1500" not in html  # never raw minor units


def test_the_pricing_page_speaks_french_with_french_money(client, table):
    html = (
        _page(client, table, **{})
        if False
        else client.get(
            reverse("storefront:pricing", args=[table.public_id]), HTTP_ACCEPT_LANGUAGE="fr"
        ).content.decode()
    )

    assert '<html lang="fr">' in html
    assert "15,00\u00a0€" in html


def test_the_toggle_is_two_radios_and_the_interval_parameter_picks_the_checked_one(client, table):
    monthly = _page(client, table)
    yearly = _page(client, table, interval="year")

    assert 'id="interval-month" value="month" checked' in monthly
    assert 'id="interval-year" value="year" checked' in yearly
    assert 'for="interval-year"' in yearly and "<legend>" in yearly
    assert "<script>" not in yearly and "onclick" not in yearly  # CSP: no inline script


def test_features_come_from_entitlements_else_from_the_entry_list(client, table, catalogue):
    seat_product = catalogue["seat"][0].product
    sso = Feature.objects.create(lookup_key="sso", name="Single sign-on")
    projects = Feature.objects.create(lookup_key="projects", name="projects", kind=Feature.Kind.QUANTITY)
    ProductFeature.objects.create(product=seat_product, feature=sso)
    ProductFeature.objects.create(product=seat_product, feature=projects, quantity=5, per_unit=True)

    month = _panel(_page(client, table), "month")

    assert "Single sign-on" in month and "5 projects per seat" in month
    assert "Email support" in month  # the flat plan grants nothing: its own list


def test_the_highlighted_plan_is_marked_and_buttons_say_start_trial(client, table):
    month = _panel(_page(client, table), "month")

    assert month.count("plan-card highlighted") == 1 and "Most popular" in month
    assert month.count("Start trial") == 4 and "14-day free trial" in month


def test_a_start_button_creates_a_checkout_session_with_the_right_items_trial_and_origin(client, table, catalogue):
    yearly_seat = catalogue["seat"][1]

    response = client.post(reverse("storefront:pricing_start", args=[table.public_id]), {"price": yearly_seat.pk})

    assert response.status_code == 302
    session = CheckoutSession.objects.get()
    assert (session.origin, session.origin_id, session.mode) == ("pricing_table", table.public_id, "subscription")
    assert session.brand_id == table.brand_id and session.livemode is True
    assert session.trial_period_days == 14
    assert [(line.price_id, line.quantity) for line in session.line_items.all()] == [(yearly_seat.pk, 1)]
    assert urlsplit(response["Location"]).path == reverse("checkout:session", args=[session.public_id])
    assert "{CHECKOUT_SESSION_ID}" in session.success_url
    assert session.cancel_url.endswith(reverse("storefront:pricing", args=[table.public_id]))


def test_a_start_button_refuses_a_price_that_is_not_in_the_table(client, table, price_factory):
    outsider = price_factory(cycle=MONTH)

    response = client.post(reverse("storefront:pricing_start", args=[table.public_id]), {"price": outsider.pk})

    assert response.status_code == 404
    assert not CheckoutSession.objects.exists()


def test_the_start_button_needs_the_csrf_token(table, catalogue):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        reverse("storefront:pricing_start", args=[table.public_id]), {"price": catalogue["flat"][0].pk}
    )

    assert response.status_code == 403
    assert not CheckoutSession.objects.exists()


def test_a_filled_honeypot_creates_nothing(client, table, catalogue):
    response = client.post(
        reverse("storefront:pricing_start", args=[table.public_id]), {"price": catalogue["flat"][0].pk, "website": "x"}
    )
    assert response.status_code == 400
    assert not CheckoutSession.objects.exists()


def test_an_archived_price_says_no_longer_available(client, table, catalogue):
    price = catalogue["flat"][0]
    Price.objects.filter(pk=price.pk).update(active=False)

    response = client.post(reverse("storefront:pricing_start", args=[table.public_id]), {"price": price.pk})

    assert response.status_code == 410
    assert not CheckoutSession.objects.exists()


def test_a_deactivated_or_unknown_table_is_not_found(client, table):
    assert client.get(reverse("storefront:pricing", args=["prctbl_doesnotexist"])).status_code == 404
    pricing_table_set_active(table=table, active=False)
    assert client.get(reverse("storefront:pricing", args=[table.public_id])).status_code == 404


def test_a_test_mode_table_shows_a_banner_and_starts_test_mode_sessions(
    client, shop_brand, product_factory, price_factory
):
    product = product_factory(livemode=False)
    price = price_factory(product=product, livemode=False, cycle=MONTH)
    test_table = pricing_table_create(
        brand=shop_brand, livemode=False, name="Sandbox", entries=[TableEntrySpec(monthly_price=price)]
    )

    html = _page(client, test_table)
    client.post(reverse("storefront:pricing_start", args=[test_table.public_id]), {"price": price.pk})

    assert "Test mode: nothing will be charged." in html
    assert CheckoutSession.objects.get().livemode is False


def test_the_rate_limit_answers_429_once_reached(client, table, catalogue, settings):
    settings.TARIF_RATELIMIT_STOREFRONT = "2/m"
    url = reverse("storefront:pricing_start", args=[table.public_id])
    price = catalogue["flat"][0].pk

    statuses = [client.post(url, {"price": price}).status_code for _ in range(3)]

    assert statuses == [302, 302, 429]
    assert CheckoutSession.objects.count() == 2


# -- embedding -------------------------------------------------------------------------------------


def test_only_the_embed_may_be_framed_and_only_by_the_allowed_origins(client, table, settings):
    settings.TARIF_PRICING_EMBED_ORIGINS = ["https://www.example.org"]
    table.embed_origins = "https://shop.example.com"
    table.save()

    page = client.get(reverse("storefront:pricing", args=[table.public_id]))
    embed = client.get(reverse("storefront:pricing_embed", args=[table.public_id]))

    assert page["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert "X-Frame-Options" not in embed
    policy = embed["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://www.example.org https://shop.example.com" in policy
    assert "script-src 'self'" in policy


def test_the_embed_posts_to_the_top_window_with_a_signed_token_instead_of_the_csrf_cookie(table, catalogue):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    html = strict.get(reverse("storefront:pricing_embed", args=[table.public_id]), {"lang": "fr"}).content.decode()
    token = html.split('name="form_token" value="')[1].split('"')[0]
    url = reverse("storefront:pricing_embed_start", args=[table.public_id])

    forged = strict.post(url, {"price": catalogue["flat"][0].pk, "form_token": "forged"})
    started = strict.post(url, {"price": catalogue["flat"][0].pk, "form_token": token})

    assert 'target="_top"' in html and '<html lang="fr">' in html
    assert forged.status_code == 403
    assert started.status_code == 302 and CheckoutSession.objects.count() == 1


def test_a_token_of_another_table_is_refused(client, table, shop_brand, catalogue):
    other = pricing_table_create(
        brand=shop_brand, livemode=True, name="Other", entries=[TableEntrySpec(monthly_price=catalogue["flat"][0])]
    )
    html = client.get(reverse("storefront:pricing_embed", args=[other.public_id])).content.decode()
    token = html.split('name="form_token" value="')[1].split('"')[0]

    response = client.post(
        reverse("storefront:pricing_embed_start", args=[table.public_id]),
        {"price": catalogue["flat"][0].pk, "form_token": token},
    )

    assert response.status_code == 403 and not CheckoutSession.objects.exists()


def test_the_embed_script_is_plain_javascript_without_eval(client, table):
    response = client.get(reverse("storefront:pricing_embed_script", args=[table.public_id]))

    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    body = response.content.decode()
    assert "tarif-pricing-table" in body and "data-tarif-pricing-table" in body and "postMessage" not in body
    assert "eval(" not in body and "new Function" not in body and "innerHTML" not in body
    assert "event.origin !== origin" in body


# -- payment links ---------------------------------------------------------------------------------


@pytest.fixture
def link(shop_brand, catalogue):
    return payment_link_create(
        brand=shop_brand,
        livemode=True,
        name="Team",
        mode="subscription",
        items=[LinkItemSpec(price=catalogue["seat"][0], quantity=3, adjustable_minimum=1, adjustable_maximum=20)],
        trial_period_days=7,
    )


def test_a_link_page_shows_the_order_and_continuing_creates_a_session(client, link, catalogue):
    url = reverse("storefront:buy", args=[link.public_id])
    item = link.items.get()

    html = client.get(url).content.decode()
    response = client.post(url, {f"quantity-{item.pk}": "12"})

    assert "€8.00 per seat per month" in html and f'for="quantity-{item.pk}"' in html
    assert response.status_code == 302
    session = CheckoutSession.objects.get()
    assert (session.origin, session.origin_id, session.trial_period_days) == ("payment_link", link.public_id, 7)
    assert [(line.price_id, line.quantity) for line in session.line_items.all()] == [(catalogue["seat"][0].pk, 12)]


def test_a_quantity_outside_the_bounds_is_a_form_error_tied_to_the_field(client, link):
    item = link.items.get()

    response = client.post(reverse("storefront:buy", args=[link.public_id]), {f"quantity-{item.pk}": "21"})

    html = response.content.decode()
    assert response.status_code == 400
    assert "Choose a quantity from 1 to 20." in html and 'aria-describedby="quantity-error"' in html
    assert not CheckoutSession.objects.exists()


def test_a_deactivated_link_is_gone_with_a_friendly_page(client, link):
    payment_link_deactivate(link=link)
    url = reverse("storefront:buy", args=[link.public_id])

    page, post = client.get(url), client.post(url)

    assert page.status_code == 410 and post.status_code == 410
    assert "no longer available" in page.content.decode()
    assert not CheckoutSession.objects.exists()


def test_a_one_time_link_creates_a_payment_session(client, shop_brand, price_factory):
    one_time = price_factory(type=Price.Type.ONE_TIME, cycle=None, unit_amount=Decimal(4900))
    link = payment_link_create(
        brand=shop_brand, livemode=True, name="Audit", mode="payment", items=[LinkItemSpec(price=one_time, quantity=2)]
    )

    response = client.post(reverse("storefront:buy", args=[link.public_id]))

    assert response.status_code == 302
    session = CheckoutSession.objects.get()
    assert session.mode == "payment" and session.trial_period_days is None


def test_unknown_link_ids_are_not_found(client):
    assert client.get(reverse("storefront:buy", args=["plink_nope"])).status_code == 404


def test_the_rate_limit_counts_the_client_behind_our_proxy_not_the_proxy(client, table, catalogue, settings):
    settings.TARIF_RATELIMIT_STOREFRONT = "1/m"
    settings.TARIF_TRUSTED_PROXIES = ["10.0.0.1"]
    url = reverse("storefront:pricing_start", args=[table.public_id])
    price = catalogue["flat"][0].pk

    def post(client_address: str) -> int:
        return client.post(
            url, {"price": price}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=client_address
        ).status_code

    assert [post("203.0.113.5"), post("198.51.100.7"), post("203.0.113.5")] == [302, 302, 429]
