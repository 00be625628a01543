"""A finance user creates a subscription with the live preview, then changes its quantity (issue 15)."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page

from billing.models import Subscription
from tests.browser.steps.subscriptions import change_quantity_with_preview, create_subscription_with_preview
from tests.conftest import current_totp

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def artefacts(tmp_path: Path) -> Path:
    """Screenshots go to $TARIF_SCREENSHOTS/subscriptions when set (CI keeps them), else the test's tmp dir."""
    root = os.environ.get("TARIF_SCREENSHOTS")
    folder = Path(root) / "subscriptions" if root else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in_finance(page: Page, base_url: str, user, device) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "correct horse battery staple")
    page.keyboard.press("Enter")
    page.wait_for_url("**/otp/**")
    page.fill("#id_otp_token", current_totp(device))
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/otp/" not in url)


def test_create_a_subscription_then_change_its_quantity_with_previews(
    live_server, page: Page, tmp_path, staff_factory, customer_factory, price_factory, tax_rate_factory
):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    user = staff_factory(username="finance-walk")
    user.groups.add(Group.objects.get(name="Finance"))
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    customer_factory(legal_name="Boulangerie Walk SARL")
    price_factory(product__name="Nuage Pro", unit_amount=Decimal(4900))
    folder = artefacts(tmp_path)
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(f"{message.text} {message.location.get('url', '')}") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda response: errors.append(f"{response.status} {response.url}") if response.status >= 400 else None,
    )

    def shots(name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    sign_in_finance(page, live_server.url, user, device)
    create_subscription_with_preview(page, live_server.url, "Boulangerie Walk", "Nuage Pro", 2, shots)
    change_quantity_with_preview(page, live_server.url, 5, shots)

    subscription = Subscription.objects.get(customer__legal_name="Boulangerie Walk SARL")
    assert [item.quantity for item in subscription.items.all()] == [5]
    assert subscription.invoices.count() == 1  # the first invoice; the change's prorations wait for the next
    # The site has no favicon yet (the browser asks for one on its own): not a console page's error.
    assert [error for error in errors if "/favicon.ico" not in error] == []
