"""A finance user signs in to the operator console in a real browser: password, then TOTP."""

from __future__ import annotations

import re

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from tests.conftest import current_totp

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_console_asks_for_a_totp_code_after_the_password(live_server, page: Page, staff_factory):
    user = staff_factory(username="camille", is_superuser=True)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "camille")
    page.fill("#id_password", "correct horse battery staple")
    page.click("#login-form button[type=submit]")

    expect(page.locator("#otp-verify-form")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/admin/otp/verify/?next=%2Fadmin%2F")
    page.goto(f"{live_server.url}/admin/customers/customer/")
    expect(page.locator("#otp-verify-form")).to_be_visible()  # nothing opens before the second factor

    page.fill("#id_otp_token", "000000" if current_totp(device) != "000000" else "111111")
    page.click("#otp-verify-form button[type=submit]")
    expect(page.locator("#otp-verify-form .errors")).to_be_visible()

    page.wait_for_timeout(1100)  # django-otp's throttle delay after one wrong code
    page.fill("#id_otp_token", current_totp(device))
    page.click("#otp-verify-form button[type=submit]")

    expect(page).to_have_url(f"{live_server.url}/admin/customers/customer/")
    expect(page).to_have_title(re.compile("Tarif"))
    expect(page.get_by_role("link", name="Clients").first).to_be_visible()  # French, as the browser asked


def test_a_new_staff_member_enrols_with_a_qr_code(live_server, page: Page, staff_factory):
    user = staff_factory(username="newcomer", is_superuser=True)

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "newcomer")
    page.fill("#id_password", "correct horse battery staple")
    page.click("#login-form button[type=submit]")

    expect(page.locator(".otp-qr svg")).to_be_visible()
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    page.fill("#id_otp_token", current_totp(device))
    page.click("#otp-enrol-form button[type=submit]")

    expect(page.locator("#recovery-codes li")).to_have_count(10)
