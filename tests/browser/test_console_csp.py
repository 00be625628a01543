"""The console's scripts run under the Content-Security-Policy (issue 15, item 11): the export
form's "select all" box works (import-export's own is an inline script the CSP blocks) and the
page raises no console error and no CSP violation. The language switch turns a list English
through and through (items 7 and 8), and the list fits 1366, 1024 and 768 px."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.console_checks import (
    english_words,
    french_page_text,
    horizontal_overflow,
    sign_in_console,
    watch_console_errors,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_export_forms_select_all_box_works_under_the_csp(
    live_server, page: Page, staff_with_totp, customer_factory
):
    customer_factory(legal_name="Export Me SAS")
    errors = watch_console_errors(page)
    sign_in_console(page, live_server.url, *staff_with_totp)

    response = page.goto(f"{live_server.url}/admin/customers/customer/export/")

    assert "script-src" in response.headers["content-security-policy"]
    toggle = page.locator("[data-export-select-all]")
    columns = page.locator('.selectable-field-export-row input[type="checkbox"]')
    expect(page.get_by_text("Tout sélectionner")).to_be_visible()
    expect(page.get_by_text("Raison sociale")).to_be_visible()  # the model's field name, in French
    assert columns.count() > 3 and all(columns.nth(i).is_checked() for i in range(columns.count()))

    toggle.click()
    assert not any(columns.nth(i).is_checked() for i in range(columns.count()))

    page.get_by_text("Raison sociale").click()  # one column back: the box shows a partial selection
    assert not toggle.is_checked() and toggle.evaluate("box => box.indeterminate")

    toggle.click()
    assert all(columns.nth(i).is_checked() for i in range(columns.count()))
    assert errors == []


def test_the_language_switch_turns_the_whole_list_english_and_it_fits_a_tablet(
    live_server, page: Page, staff_with_totp, customer_factory
):
    customer_factory(legal_name="Nordlicht GmbH", country="DE")
    customer_factory(legal_name="Atelier Dupont", country="FR")
    errors = watch_console_errors(page)
    sign_in_console(page, live_server.url, *staff_with_totp)
    page.set_viewport_size({"width": 1366, "height": 768})

    page.goto(f"{live_server.url}/admin/customers/customer/")
    countries = page.locator("select[name=country__exact] option")
    assert english_words(french_page_text(page)) == []
    assert countries.all_text_contents()[1:] == ["Allemagne", "France"]  # only those in use, in French
    assert horizontal_overflow(page) == []

    # unfold's language switch (in the user menu): a form posting to Django's set_language
    page.locator("form:has(input[name=language][value=en]) button").dispatch_event("click")
    page.wait_for_load_state("networkidle")

    expect(page.locator("#searchbar")).to_have_attribute("placeholder", "Type to search")
    assert countries.all_text_contents()[1:] == ["France", "Germany"]
    english_date = re.compile(r"\b\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}\b")  # 6 Dec 2026, 21:30
    assert english_date.search(page.inner_text("#result_list"))
    for width in (1024, 768):
        page.set_viewport_size({"width": width, "height": 900})
        assert horizontal_overflow(page) == [], width
    assert errors == []
