"""Walk steps for the subscription editor (issue 15, item 4).

Plain functions over a Playwright `page`: they drive the console as a finance person would
(no ORM writes) and assert what that person sees. They rely on data-* hooks, not on words,
so they work in any console language. `shots(name)` saves a screenshot.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

Shots = Callable[[str], object]


def _select2_pick(page: Page, container: str, typed: str, option_text: str) -> None:
    """Open the searchable picker inside `container`, type `typed`, click the option showing `option_text`."""
    page.locator(f"{container} .select2-selection").first.click()
    search = page.locator(".select2-container--open .select2-search__field")
    search.fill(typed)
    page.locator(".select2-results__option", has_text=option_text).first.click()


def create_subscription_with_preview(
    page: Page, base_url: str, customer_name: str, price_label: str, quantity: int, shots: Shots
) -> None:
    """New subscription for `customer_name`: pick the price whose label contains `price_label`,
    set the quantity, read the first invoice in the live preview, create it (confirming)."""
    page.goto(f"{base_url}/admin/billing/subscription/add/")
    _select2_pick(page, "[data-tarif-customer]", customer_name, customer_name)
    # The page reloads with the customer chosen, so the picker lists prices in its currency.
    page.wait_for_url(re.compile(r"customer=\d+"))
    with page.expect_response(lambda response: "/add/preview/" in response.url):
        _select2_pick(page, "[data-tarif-item]:nth-child(1)", price_label.split(" — ")[0], price_label)
    with page.expect_response(lambda response: "/add/preview/" in response.url):
        page.fill("#id_items-0-quantity", str(quantity))
        page.locator("#id_items-0-quantity").dispatch_event("change")
    preview = page.locator("[data-tarif-preview]")
    expect(preview.locator("[data-tarif-invoice]")).to_be_visible()
    expect(preview.locator("[data-tarif-amount-due]")).to_contain_text(re.compile(r"\d"))
    expect(preview.locator("[data-tarif-invoice] tbody tr").first).to_contain_text(str(quantity))
    shots("subscription_create_preview")

    page.once("dialog", lambda dialog: dialog.accept())  # "Create the subscription and issue its first invoice now?"
    page.locator("button[name=_create]").click()
    page.wait_for_url(re.compile(r"/admin/billing/subscription/\d+/change/"))
    expect(page.locator("[data-tarif-summary]")).to_contain_text(customer_name)
    expect(page.locator("[data-tarif-items] tbody tr").first).to_contain_text(str(quantity))
    shots("subscription_created")


def change_quantity_with_preview(page: Page, base_url: str, quantity: int, shots: Shots) -> None:
    """On a subscription's page: change the first item's quantity, read what the change does
    (prorations, next invoice) in the live preview, apply it (confirming)."""
    assert re.search(r"/admin/billing/subscription/\d+/change/", page.url), "start on a subscription page"
    mrr_before = page.locator("[data-tarif-mrr]").inner_text()
    page.locator("[data-tarif-operations] a[href$='/items/']").click()
    page.wait_for_url(re.compile(r"/items/$"))
    expect(page.locator("[data-tarif-preview] [data-tarif-consequence]")).to_be_visible()  # the current state
    with page.expect_response(lambda response: "/items/preview/" in response.url):
        page.fill("#id_items-0-quantity", str(quantity))
        page.locator("#id_items-0-quantity").dispatch_event("change")
    preview = page.locator("[data-tarif-preview]")
    expect(preview.locator("[data-tarif-consequence]")).to_be_visible()
    expect(preview.locator("[data-tarif-invoice]").last).to_contain_text(str(quantity))
    shots("subscription_change_preview")

    page.once("dialog", lambda dialog: dialog.accept())  # "Apply this change now, as the preview shows?"
    page.locator("button[name=_apply]").click()
    page.wait_for_url(re.compile(r"/admin/billing/subscription/\d+/change/"))
    expect(page.locator("[data-tarif-items] tbody tr").first).to_contain_text(str(quantity))
    expect(page.locator("[data-tarif-mrr]")).not_to_have_text(mrr_before)
    shots("subscription_changed")
