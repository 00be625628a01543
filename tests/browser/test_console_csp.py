"""The console's scripts run under the Content-Security-Policy (issue 15, item 11): the export
form's "select all" box works (import-export's own is an inline script the CSP blocks) and the
page raises no console error and no CSP violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.console_checks import sign_in_console, watch_console_errors

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
