"""The console's Accounting section in Chromium at 1366 px (issue 19): every tab renders with the
console's styles (tabs in a row, labelled filter fields, a filled primary button), fits the width,
names the open period "ouverte" in French (not the invoice's "émise") and passes axe.

The styles checked are the computed ones: a template class without a rule in console.css renders
as bare text in a column, which these assertions catch (they failed before the section had its
rules)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from playwright.sync_api import Browser

from tests.browser.axe import assert_accessible
from tests.browser.console import signed_in_context
from tests.console_pages import role_user
from tests.invoices.helpers import issue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AT = datetime(2026, 3, 11, 8, 0, tzinfo=UTC)
TABS = ["", "trial-balance/", "vat/", "periods/", "reconciliation/", "exports/", "settings/"]


@pytest.fixture
def world(brand_factory, customer_factory, tax_rate_factory, settings):
    settings.TARIF_LEDGER_ENABLED = True
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    brand = brand_factory(slug="accounting-pages", invoice_number_format="CP-{year}-{seq:06d}", is_default=True)
    buyer = customer_factory(brand=brand, is_business=True, country="FR", legal_name="Acheteur SAS")
    issue(buyer, [12000], at=AT)
    return {"finance": role_user("Finance", username="fabienne")}


def _styles(tab) -> dict:
    return tab.evaluate(
        """() => {
            const list = document.querySelector('nav.tarif-tabs ul');
            const current = document.querySelector('nav.tarif-tabs a[aria-current="page"]');
            const button = document.querySelector('.tarif-accounting form button[type="submit"]');
            const style = (el, prop) => el ? getComputedStyle(el)[prop] : null;
            return {
                tabs: style(list, 'display'),
                tabsBullet: style(list, 'listStyleType'),
                current: current ? current.textContent.trim() : null,
                currentBorder: style(current, 'borderBottomStyle'),
                button: style(button, 'backgroundColor'),
                overflow: document.documentElement.scrollWidth > innerWidth,
            };
        }"""
    )


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_accounting_tab_is_styled_fits_1366_px_and_passes_axe(browser: Browser, live_server, world, language):
    with signed_in_context(browser, live_server.url, world["finance"], language=language) as context:
        tab = context.new_page()
        for path in TABS:
            url = f"/admin/accounting/{path}"
            response = tab.goto(url, wait_until="load")
            assert response is not None and response.status == 200, f"{url}: HTTP {response and response.status}"
            styles = _styles(tab)
            assert styles["tabs"] == "flex", (url, styles)
            assert styles["tabsBullet"] == "none", (url, styles)
            assert styles["current"], (url, "no current tab")
            assert styles["currentBorder"] == "solid", (url, styles)
            assert not styles["overflow"], (url, "wider than 1366 px")
            if path in ("", "periods/", "reconciliation/", "exports/", "settings/"):  # the pages with a form
                assert styles["button"] not in (None, "rgba(0, 0, 0, 0)", "transparent"), (url, styles)
            assert_accessible(tab, name=f"accounting {path or 'journal'} ({language})")
        tab.goto("/admin/accounting/periods/")
        state = tab.locator(".tarif-report-table tbody tr").first.locator("td").first.inner_text().strip()
        assert state == ("ouverte" if language == "fr" else "open")
