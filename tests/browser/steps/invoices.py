"""Walk steps for invoices and credit notes (the Playwright walk of issue 15 chains them).

Plain functions of a Playwright `page`, the live server's base URL and a `shots(name)` callable
that saves a screenshot. They drive the console's UI only (no ORM) and assert what a finance
person sees. Selectors are ids, names and URLs, never translated text, so the walk runs in any
console language.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

Shots = Callable[[str], object]


def pick_select2(page: Page, field_name: str, query: str, option_text: str | None = None) -> None:
    """Choose `option_text` (default: `query`) in the select2 box of the select named `field_name`."""
    page.locator(f"select[name='{field_name}'] + .select2-container .select2-selection").click()
    search = page.locator(".select2-container--open .select2-search__field")
    search.fill(query)
    option = page.locator(".select2-results__option", has_text=option_text or query).first
    expect(option).to_be_visible()
    option.click()


def create_and_finalize_draft(page: Page, base_url: str, customer_name: str, shots: Shots) -> str:
    """New draft for `customer_name`, a free line (2 x 150) and, with the price picker, a catalog
    line when the catalog has one; live totals checked; then Finalize with its confirmation.
    Returns the number the invoice took (the one the confirmation announced)."""
    page.goto(f"{base_url}/admin/invoices/invoice/add/")
    pick_select2(page, "customer", customer_name)
    shots("invoice_new_draft")
    page.locator("#invoice-action-form button[name='confirm']").click()

    expect(page.locator("#draft-editor")).to_be_visible()
    before = page.locator("#draft-total").inner_text()
    page.fill("#draft-line-form input[name='description']", "Onboarding workshop")
    page.fill("#draft-line-form input[name='unit_amount']", "150")
    page.fill("#draft-line-form input[name='quantity']", "2")
    # the totals follow the line being typed, before it is added
    expect(page.locator("#draft-total")).not_to_have_text(before)
    expect(page.locator("#draft-total")).to_contain_text("360")  # 2 x 150 + 20 % VAT
    shots("invoice_draft_line_typed")
    page.locator("#draft-line-form button[name='add']").click()
    expect(page.locator("#draft-lines tr.tarif-line")).to_have_count(1)
    expect(page.locator("#draft-total")).to_contain_text("360")
    shots("invoice_draft_with_line")

    page.locator(".tarif-finalize-link a").click()
    facts = page.locator("#invoice-facts dd")
    number = facts.first.inner_text().strip()
    assert re.search(r"\d", number), f"the confirmation should state the number, got {number!r}"
    shots("invoice_finalize_confirmation")
    # Finalizing renders the PDF (eager tasks in the demo and the tests): allow it some seconds.
    with page.expect_navigation(timeout=60_000):
        page.locator("#invoice-action-form button[name='confirm']").click()

    expect(page.locator("#invoice-summary")).to_be_visible()
    expect(page.locator("#draft-editor")).to_have_count(0)
    expect(page.locator("h1")).to_contain_text(number)
    shots("invoice_finalized")
    return number


def credit_note_for_one_line(page: Page, base_url: str, invoice_number: str, shots: Shots) -> None:
    """From the invoice page, a credit note for one unit of its first line: the amounts and where
    the money goes are shown before confirming; the credit note is then listed on the invoice."""
    page.goto(f"{base_url}/admin/invoices/invoice/?q={invoice_number}")
    page.get_by_role("link", name=invoice_number, exact=True).first.click()
    page.locator("a[href$='/issue-credit-note/']").first.click()

    expect(page.locator("#credit-lines")).to_be_visible()
    page.locator("#credit-lines input[name^='qty_']").first.fill("1")
    expect(page.locator("#credit-total")).to_be_visible()
    expect(page.locator("#credit-split p").first).to_be_visible()
    shots("credit_note_preview")
    page.locator("#credit-note-form button[name='confirm']").click()

    expect(page.locator("#invoice-summary")).to_be_visible()
    credit_rows = page.locator("a[href*='/admin/invoices/creditnote/']")
    expect(credit_rows.first).to_be_visible()
    shots("credit_note_issued")
