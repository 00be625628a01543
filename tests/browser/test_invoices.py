"""Finance creates, edits and finalizes a draft invoice, then credits one line, in a real browser.

The steps are the walk's (tests/browser/steps/invoices.py); screenshots of each go to
$TARIF_SCREENSHOTS (else the test's temporary directory).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from invoices.models import CreditNote, Invoice
from tests.browser.steps.invoices import create_and_finalize_draft, credit_note_for_one_line
from tests.conftest import current_totp

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shots(page: Page, tmp_path: Path):
    folder = Path(os.environ.get("TARIF_SCREENSHOTS", tmp_path)) / "invoices"
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert width, f"{name}: the page scrolls horizontally at {page.viewport_size}"

    return shoot


def test_finance_drafts_finalizes_and_credits_an_invoice(
    live_server, page: Page, staff_factory, customer_factory, brand_factory, tax_rate, shots
):
    customer_factory(legal_name="Boulangerie Martin SARL", brand=brand_factory(slug="walk"))
    user = staff_factory(username="finance")
    user.groups.add(Group.objects.get(name="Finance"))
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "finance")
    page.fill("#id_password", "correct horse battery staple")
    page.keyboard.press("Enter")
    page.fill("#id_otp_token", current_totp(device))
    page.keyboard.press("Enter")
    expect(page.locator("#id_otp_token")).to_have_count(0)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    number = create_and_finalize_draft(page, live_server.url, "Boulangerie", shots)
    credit_note_for_one_line(page, live_server.url, number, shots)

    invoice = Invoice.objects.get(number=number)
    assert (invoice.status, invoice.total) == (Invoice.Status.OPEN, 36000)
    note = CreditNote.objects.get(invoice=invoice)
    assert (note.total, note.reduced_amount_due) == (18000, 18000)
    assert errors == []
