"""Walk steps for the console's home (issue 15's walk contract): sign in with TOTP, open the
dashboard, find a customer with the global search. They drive the UI only and assert what a
finance person sees; `shots(name)` saves a screenshot."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

Shots = Callable[[str], Any]


def totp_code(secret_or_device: Any) -> str:
    """The current code of a TOTP device, or of a base32 secret (as printed by seed_demo)."""
    if not isinstance(secret_or_device, str):
        from django_otp.oath import totp  # deferred: only when given a device (a test's database)

        device = secret_or_device
        return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"
    key = base64.b32decode(secret_or_device + "=" * (-len(secret_or_device) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 15
    return f"{(struct.unpack('>I', digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**6:06d}"


def sign_in(page: Page, base_url: str, username: str, password: str, totp_secret_or_device: Any) -> None:
    """Password, then the TOTP code: lands on the dashboard."""
    page.goto(f"{base_url}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.locator("form button[type=submit], form input[type=submit]").first.click()
    expect(page.locator("input[name=otp_token]")).to_be_visible()
    page.fill("input[name=otp_token]", totp_code(totp_secret_or_device))
    with page.expect_navigation():
        page.locator("#otp-verify-form button[type=submit], #otp-verify-form input[type=submit]").first.click()
    expect(page.locator("#tarif-home")).to_be_visible()


def open_dashboard(page: Page, base_url: str, shots: Shots) -> None:
    """The home page: the mode it shows, headline figures linked to their lists, the MRR chart."""
    page.goto(f"{base_url}/admin/")
    expect(page.locator("#tarif-home-mode")).to_be_visible()
    for key in ("mrr", "subscriptions", "revenue", "receivables", "failed_payments", "next_billing_run"):
        expect(page.locator(f"#kpi-{key}")).to_be_visible()
    expect(page.locator("#tarif-home-mrr")).to_be_visible()  # the chart, or "no recurring revenue yet"
    expect(page.locator("#attention-refunds")).to_be_visible()
    shots("home-dashboard")
    href = page.locator("#kpi-receivables").get_attribute("href") or ""
    assert "/admin/invoices/invoice/" in href and "status__exact=open" in href


def search_and_open_customer(page: Page, base_url: str, query: str, shots: Shots) -> None:
    """The sidebar's search box (or Ctrl-K) opens the command search; typing part of a
    customer's name lists it; choosing it opens their page."""
    page.goto(f"{base_url}/admin/")
    sidebar_box = page.locator("#tarif-sidebar-search")
    if sidebar_box.count():
        sidebar_box.click()
    else:
        page.keyboard.press("Control+k")
    box = page.locator("#search-input-command")
    expect(box).to_be_visible()
    box.fill(query)
    box.press("End")  # htmx searches on keyup
    result = page.locator("#command-results-list a[href*='/admin/customers/customer/']").first
    expect(result).to_be_visible(timeout=10_000)
    shots("home-search")
    with page.expect_navigation():
        result.click()
    expect(page).to_have_url(re.compile(r".*/admin/customers/customer/\d+/change/"))
