"""Walk steps of the customer hub (issue 15's console walk; engineer 8 chains them).

Plain functions over a Playwright page: they drive the console's UI only (no ORM writes)
and assert what a finance person sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

HUB_TABS = ("overview", "subscriptions", "invoices", "payments", "upcoming", "usage", "timeline", "portal", "notes")


def open_customer_hub(page: Page, base_url: str, customer_name: str, shots: Callable[[str], object]) -> None:
    """From the customer list: search the name, open the customer, check the hub's header and tabs."""
    page.goto(f"{base_url}/admin/customers/customer/")
    search = page.locator("#searchbar")
    search.fill(customer_name)
    search.press("Enter")
    page.get_by_role("link", name=customer_name, exact=True).first.click()

    hub = page.locator("#customer-hub")
    expect(hub).to_be_visible()
    expect(hub.locator("h2")).to_have_text(customer_name)
    for figure in ("balance", "mrr", "ltv", "overdue", "payment-method"):
        expect(page.locator(f'[data-figure="{figure}"]')).to_be_visible()
    expect(page.locator("#overview-group")).to_be_visible()  # the hub opens on its overview
    expect(page).to_have_url(re.compile(r"/change/(\?[^#]*)?#overview$"))
    shots("customer-hub")

    for tab in HUB_TABS[1:]:
        page.locator(f'#customer-hub-tabs a[data-tab="{tab}"]').click()
        expect(page.locator(f"#{tab}-group")).to_be_visible()
        expect(page.locator("#overview-group")).to_be_hidden()
    page.locator('#customer-hub-tabs a[data-tab="invoices"]').click()
    shots("customer-hub-invoices")
    page.locator('#customer-hub-tabs a[data-tab="general"]').click()
    expect(page.locator("input[name=legal_name]")).to_be_visible()  # the details form
    page.locator('#customer-hub-tabs a[data-tab="overview"]').click()
    expect(page.locator("input[name=legal_name]")).to_be_hidden()
