"""Walk steps for payments, refunds and bank reconciliation (issue 15, engineer 5).

Plain functions over a signed-in Playwright `page`: they drive the console as a finance
person would (no ORM writes) and assert what that person sees.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

Shots = Callable[[str], object]

# A raw minor-unit amount as the old console printed it: "15000 EUR".
RAW_MINOR = re.compile(r"\b\d{3,} (EUR|USD|GBP|CHF|JPY)\b")


def totp_code(secret: str, *, steps_ahead: int = 1) -> str:
    """A TOTP code (RFC 6238, SHA-1, 6 digits, 30 s). One step ahead by default: the code the
    sign-in used is spent (django-otp refuses it again) and the next one is within tolerance."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int(time.time()) // 30 + steps_ahead
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 15
    return f"{(struct.unpack('>I', digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**6:06d}"


def approve_refund(page: Page, base_url: str, shots: Shots, *, totp_secret: str) -> str:
    """As a finance user other than the requester: open the first refund awaiting approval,
    read who asked and how much, approve with a fresh two-factor code. Returns the amount shown."""
    page.goto(f"{base_url}/admin/billing/refund/?status__exact=requested")
    rows = page.locator("#result_list tbody tr")
    expect(rows.first).to_be_visible()
    rows.first.locator("a").first.click()
    page.get_by_role("link", name=re.compile("Approve|Approuver")).first.click()

    amount = page.locator("#refund-amount").inner_text().strip()
    assert re.search(r"\d[\d\s\u202f.,]*\s?[€$£]|[€$£]\s?\d", amount), amount
    expect(page.locator("#refund-requested-by")).not_to_be_empty()
    expect(page.locator("#refund-consequence")).to_contain_text(amount)
    expect(page.locator("#refund-own-request")).to_have_count(0)
    assert not RAW_MINOR.search(page.locator("#content-main").inner_text())
    shots("refund_approval")

    page.fill("input[name=otp_token]", totp_code(totp_secret))
    page.once("dialog", lambda dialog: dialog.accept())  # the confirmation states amount and customer
    page.locator("#refund-decision-form button[type=submit]").click()
    page.wait_for_load_state()

    messages = page.locator("#content, body").first.inner_text()
    assert amount in messages, messages[:500]
    expect(page.get_by_text(re.compile("refunded|remboursé", re.IGNORECASE)).first).to_be_visible()
    shots("refund_approved")
    return amount


def import_bank_statement(page: Page, base_url: str, file_path: str | Path, shots: Shots) -> None:
    """Upload a statement (CSV or CAMT.053), read the preview (formatted amounts, what matching
    would do), confirm, and land on the imported lines where unmatched ones offer invoices."""
    page.goto(f"{base_url}/admin/billing/bankstatement/import/")
    expect(page.locator("#bank-import-help")).to_be_visible()
    page.set_input_files("input[name=import_file]", str(file_path))
    fmt = page.locator("select[name=format]")
    if fmt.count():
        is_xml = str(file_path).lower().endswith(".xml")
        label = re.compile("CAMT" if is_xml else "CSV", re.IGNORECASE)
        options = fmt.locator("option")
        for index in range(options.count()):
            if label.search(options.nth(index).inner_text()):
                fmt.select_option(index=index)
                break
    page.locator("form[enctype='multipart/form-data'] button[type=submit]").click()
    page.wait_for_load_state()

    preview = page.locator("#bank-import-preview")
    expect(preview).to_be_visible()
    text = preview.inner_text()
    assert re.search(r"[€$£]", text), text[:300]
    assert not RAW_MINOR.search(text), text[:300]
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), "the preview scrolls sideways"
    shots("bank_import_preview")

    page.get_by_role("button", name=re.compile("Confirm import|Confirmer l")).click()
    page.wait_for_load_state()
    expect(page).to_have_url(re.compile(r"/admin/billing/bankstatementline/\?statement__id__exact=\d+"))
    expect(page.locator("#result_list")).to_be_visible()
    assert not RAW_MINOR.search(page.locator("#result_list").inner_text())
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), "the lines scroll sideways"
    shots("bank_import_lines")
