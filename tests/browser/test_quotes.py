"""The public quote page in Chromium: accessible (axe-core, WCAG 2.2 AA), in French and English,
with a keyboard-usable form whose errors are tied to their fields; accepting creates the subscription."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from billing.models import Price, Subscription
from billing.quotes.models import Quote
from billing.quotes.selectors import quote_public_token
from billing.quotes.services import QuoteLineInput, quote_cancel, quote_create, quote_finalize
from tests.browser.axe import assert_accessible

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def quote(brand_factory, tax_rate_factory, customer_factory, product_factory, settings):
    settings.TARIF_QUOTE_MIN_FILL_SECONDS = 0
    tax_rate_factory(country="FR", percentage=Decimal(20))
    brand = brand_factory(slug="atelier-devis", is_default=True, default_language="fr", primary_colour="#1d3f7a")
    customer = customer_factory(brand=brand, preferred_language="fr")
    price = Price.objects.create(
        product=product_factory(name="Nuage Pro"),
        currency="EUR",
        unit_amount=Decimal(4900),
        cycle={"kind": "interval", "unit": "month", "count": 1},
    )
    draft = quote_create(
        customer=customer,
        lines=[QuoteLineInput(price=price, quantity=3), QuoteLineInput(description="Formation", unit_amount=60000)],
        terms="Paiement à 30 jours.",
    )
    return quote_finalize(quote=draft)


def _open(page: Page, live_server, quote: Quote, lang: str = "") -> None:
    url = f"{live_server.url}/quotes/{quote_public_token(quote)}/" + (f"?lang={lang}" if lang else "")
    page.goto(url)


def test_the_quote_page_is_accessible_and_accepts_by_keyboard(live_server, page: Page, quote):
    _open(page, live_server, quote)
    expect(page.get_by_role("heading", level=1)).to_contain_text(quote.number)
    assert_accessible(page, name="quote page (fr)")

    # Sent empty: the errors are announced and tied to their fields (selectors by id: the
    # French wording comes with the lead's translation pass).
    page.locator("form.quote-form button[type=submit]").click()
    name_field = page.locator("#id_signer_name")
    expect(name_field).to_have_attribute("aria-invalid", "true")
    expect(name_field).to_have_attribute("aria-describedby", "id_signer_name_error")
    expect(page.get_by_role("alert").first).to_be_visible()
    assert_accessible(page, name="quote page with errors (fr)")

    # By keyboard: type the name, tab to the box, tick it with Space, tab to the button, Enter.
    name_field.fill("Camille Martin")
    name_field.press("Tab")
    expect(page.locator("#id_accept")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(page.locator("form.quote-form button[type=submit]")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.get_by_role("status")).to_contain_text(
        "Camille Martin", timeout=30_000
    )  # issues and emails the invoice
    assert_accessible(page, name="quote accepted (fr)")
    quote.refresh_from_db()
    assert quote.status == Quote.Status.ACCEPTED
    assert Subscription.objects.filter(customer=quote.customer).count() == 1


def test_the_english_page_and_a_closed_quote_are_accessible(live_server, page: Page, quote):
    _open(page, live_server, quote, "en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert_accessible(page, name="quote page (en)")

    quote_cancel(quote=quote)
    _open(page, live_server, quote, "en")
    expect(page.get_by_role("alert")).to_contain_text("withdrawn")
    assert page.get_by_role("button", name="Accept and sign").count() == 0
    assert_accessible(page, name="canceled quote (en)")
