"""Visitors use a pricing table and a payment link in a real browser (issue 17): keyboard toggle,
start a trial, the embed on another site, accessibility (axe-core) on every storefront page."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from billing.checkout.models import CheckoutSession
from billing.models import Price
from billing.storefront.services import (
    LinkItemSpec,
    TableEntrySpec,
    payment_link_create,
    payment_link_deactivate,
    pricing_table_create,
)
from tests.browser.axe import assert_accessible

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
MONTH = {"kind": "interval", "unit": "month", "count": 1}
YEAR = {"kind": "interval", "unit": "year", "count": 1}


@pytest.fixture
def other_site() -> Iterator[dict]:
    """Another site on loopback (another origin than the live server; Chromium refuses a public
    page loading loopback scripts, so the host page must really be served from loopback)."""
    content: dict = {"html": ""}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = content["html"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    content["origin"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield content
    server.shutdown()
    server.server_close()


@pytest.fixture
def shop(live_server, settings, brand_factory, product_factory, tax_rate_factory):
    settings.TARIF_BASE_URL = live_server.url
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    brand = brand_factory(slug="nuage", name="Atelier Nuage", is_default=True, primary_colour="#2851a3")
    starter = product_factory(name="Starter")
    team = product_factory(name="Team", unit_label="seat")
    prices = {
        "starter_month": Price.objects.create(product=starter, currency="EUR", unit_amount=Decimal(1500), cycle=MONTH),
        "starter_year": Price.objects.create(product=starter, currency="EUR", unit_amount=Decimal(15000), cycle=YEAR),
        "team_month": Price.objects.create(
            product=team,
            currency="EUR",
            scheme=Price.Scheme.TIERED_GRADUATED,
            tiers=[{"up_to": 10, "unit_amount": "900"}, {"up_to": None, "unit_amount": "700"}],
            cycle=MONTH,
        ),
        "team_year": Price.objects.create(product=team, currency="EUR", unit_amount=Decimal(90000), cycle=YEAR),
    }
    table = pricing_table_create(
        brand=brand,
        livemode=True,
        name="Plans",
        entries=[
            TableEntrySpec(
                monthly_price=prices["starter_month"], yearly_price=prices["starter_year"], features=("Email support",)
            ),
            TableEntrySpec(monthly_price=prices["team_month"], yearly_price=prices["team_year"], highlighted=True),
        ],
        trial_period_days=14,
    )
    link = payment_link_create(
        brand=brand,
        livemode=True,
        name="Team seats",
        mode="subscription",
        items=[LinkItemSpec(price=prices["team_month"], quantity=3, adjustable_minimum=1, adjustable_maximum=20)],
    )
    return {"table": table, "link": link, "prices": prices}


def test_the_toggle_works_by_keyboard_and_start_trial_lands_on_the_checkout(live_server, page: Page, shop):
    table = shop["table"]
    page.goto(f"{live_server.url}/pricing/{table.public_id}/")
    assert_accessible(page, name="pricing table (French)")
    monthly_card = page.get_by_role("heading", name="Starter").first
    expect(page.get_by_text("15,00 €")).to_be_visible()
    expect(page.get_by_text("150,00 €")).to_be_hidden()

    # Tab to the billing period, arrows to "yearly": the yearly prices show, the monthly ones hide.
    page.locator("#interval-month").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#interval-year")).to_be_checked()
    expect(page.get_by_text("150,00 €")).to_be_visible()
    expect(page.get_by_text("15,00 €")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"interval=year"))
    assert_accessible(page, name="pricing table, yearly")
    assert monthly_card is not None

    page.locator(".panel-year .plan-card.highlighted").get_by_role("button").click()

    expect(page).to_have_url(re.compile(r"/checkout/cs_\w+/$"))
    expect(page.locator("form")).not_to_have_count(0)  # the hosted checkout page itself, not an error page
    session = CheckoutSession.objects.get()
    assert (session.origin, session.origin_id, session.trial_period_days) == ("pricing_table", table.public_id, 14)
    assert [line.price_id for line in session.line_items.all()] == [shop["prices"]["team_year"].pk]


def test_the_english_page_and_the_payment_link_pages_are_accessible(live_server, browser, shop):
    page = browser.new_page(locale="en-GB")
    page.goto(f"{live_server.url}/pricing/{shop['table'].public_id}/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_text("From €9.00")).to_be_visible()
    assert_accessible(page, name="pricing table (English)")

    link = shop["link"]
    page.goto(f"{live_server.url}/buy/{link.public_id}/")
    assert_accessible(page, name="payment link")
    page.get_by_label("Quantity of Team").fill("25")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose a quantity from 1 to 20.")
    assert_accessible(page, name="payment link with a quantity error")
    page.get_by_label("Quantity of Team").fill("12")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page).to_have_url(re.compile(r"/checkout/cs_\w+/$"))
    session = CheckoutSession.objects.get()
    assert session.line_items.get().quantity == 12
    page.goto(f"{live_server.url}/storefront/thanks/?session_id={session.public_id}")
    expect(page.get_by_role("heading", name="Order status")).to_be_visible()
    assert_accessible(page, name="thank-you page")

    payment_link_deactivate(link=link)
    response = page.goto(f"{live_server.url}/buy/{link.public_id}/")
    assert response.status == 410
    expect(page.get_by_role("heading", name="No longer available")).to_be_visible()
    assert_accessible(page, name="deactivated payment link")


def test_the_embed_script_frames_the_table_on_another_site_and_sizes_it(live_server, page: Page, shop, other_site):
    table = shop["table"]
    table.embed_origins = other_site["origin"]
    table.save()
    other_site["html"] = (
        "<!doctype html><html lang='en'><head><title>Shop</title></head><body><main><h1>Our plans</h1>"
        f"<tarif-pricing-table data-id='{table.public_id}' data-title='Plans'></tarif-pricing-table>"
        f"<script src='{live_server.url}/pricing/{table.public_id}/embed.js' async></script></main></body></html>"
    )

    page.goto(f"{other_site['origin']}/shop.html")

    frame_element = page.locator("tarif-pricing-table iframe")
    expect(frame_element).to_have_attribute("src", re.compile(rf"/pricing/{table.public_id}/embed"))
    frame = page.frame_locator("tarif-pricing-table iframe")
    expect(frame.get_by_role("heading", name="Team")).to_be_visible()
    # The frame told the host its height (postMessage), and the script sized the iframe to it.
    expect(frame_element).to_have_attribute("style", re.compile(r"height: \d+px"))
    embedded = next(f for f in page.frames if "/embed" in f.url)
    assert_accessible(embedded, name="embedded pricing table")

    frame.locator(".panel-month .plan-card").first.get_by_role("button").click()

    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/checkout/cs_\w+/$"))
    assert CheckoutSession.objects.get().origin_id == table.public_id
