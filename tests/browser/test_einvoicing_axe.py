"""axe-core on the e-invoicing and e-reporting screens (issue 18), in Chromium at 1366 px: the
platform accounts and transmissions lists, a transmission, the invoice's status timeline (with
a rejected status), the customer hub's directory warning, the console home's "needs attention"
lists, the e-reporting periods and a period's report, and the portal's invoice timeline.

The console's own frame (unfold's navigation) is checked by the console walks; here each page
is checked whole, and the e-invoicing section again on its own so a finding names it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import Browser

from customers.models import CustomerUser
from invoices.einvoicing.adapters import StatusReport
from invoices.einvoicing.models import DirectoryEntry, PlatformAccount, Transmission
from invoices.einvoicing.services import lifecycle_status_record
from invoices.ereporting.services import ereporting_period_build, ereporting_period_hold
from tests.browser.axe import assert_accessible
from tests.browser.console import HEIGHT, WIDTH, signed_in_context
from tests.console_pages import role_user
from tests.invoices.helpers import issue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIREN = "732829320"
AT = datetime(2026, 3, 11, 8, 0, tzinfo=UTC)
IN_OCTOBER = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)


def _status(transmission: Transmission, code: str, *, minute: int, reason: str = "", origin: str = "platform") -> None:
    lifecycle_status_record(
        transmission=transmission,
        report=StatusReport(
            flow_id="FLOW-1",
            tracking_id=transmission.tracking_id,
            code=code,
            occurred_at=AT.replace(minute=minute),
            origin=origin,  # type: ignore[arg-type]
            reason_code="REJ_SEMAN" if reason else "",
            reason_text=reason,
        ),
    )


@pytest.fixture
def world(brand_factory, customer_factory, tax_rate_factory):
    tax_rate_factory(country="FR", percentage=Decimal("20"))
    brand = brand_factory(slug="einvoicing-axe", invoice_number_format="AX-{year}-{seq:06d}", is_default=True)
    account = PlatformAccount.objects.create(
        brand=brand, livemode=True, name="Simulated PA", base_url="http://127.0.0.1:9", webhook_secret="whsec"
    )
    buyer = customer_factory(brand=brand, siren=SIREN, is_business=True, country="FR", legal_name="Acheteur SAS")
    invoice = issue(buyer, [12000], at=AT)
    transmission = Transmission.objects.get(invoice=invoice)
    _status(transmission, "200", minute=1)
    _status(transmission, "203", minute=2)
    _status(transmission, "213", minute=3, reason="The buyer's SIREN is unknown")
    DirectoryEntry.objects.create(
        livemode=True, siren=SIREN, found=False, fetched_at=AT, expires_at=datetime(2099, 1, 1, tzinfo=UTC)
    )
    consumer = customer_factory(brand=brand, is_business=False, country="FR")
    issue(consumer, [10000], at=IN_OCTOBER)
    period = ereporting_period_build(brand=brand, livemode=True, kind="transactions", start=date(2026, 10, 1))
    ereporting_period_hold(
        brand=brand,
        livemode=True,
        kind="transactions",
        start=date(2026, 10, 11),
        end=date(2026, 10, 20),
        reason="No USD/EUR exchange rate is known on or before 2026-10-12",
    )
    return {
        "account": account,
        "buyer": buyer,
        "invoice": invoice,
        "transmission": transmission,
        "period": period,
        "finance": role_user("Finance", username="flora"),
    }


def test_the_console_einvoicing_and_ereporting_screens_pass_axe(browser: Browser, live_server, world):
    pages = [
        ("console home", "/admin/", None),
        ("platform accounts", "/admin/einvoicing/platformaccount/", None),
        ("platform account", f"/admin/einvoicing/platformaccount/{world['account'].pk}/change/", None),
        ("transmissions", "/admin/einvoicing/transmission/", None),
        ("transmission", f"/admin/einvoicing/transmission/{world['transmission'].pk}/change/", None),
        ("invoice", f"/admin/invoices/invoice/{world['invoice'].pk}/change/", "[data-section='einvoice-timeline']"),
        ("customer hub", f"/admin/customers/customer/{world['buyer'].pk}/change/", "[data-section='einvoicing']"),
        ("e-reporting periods", "/admin/ereporting/ereportingperiod/", None),
        (
            "e-reporting period",
            f"/admin/ereporting/ereportingperiod/{world['period'].pk}/change/",
            "#ereporting-report",
        ),
    ]
    with signed_in_context(browser, live_server.url, world["finance"], language="en") as context:
        tab = context.new_page()
        for name, url, section in pages:
            response = tab.goto(url, wait_until="load")
            assert response is not None and response.status == 200, f"{name}: HTTP {response and response.status}"
            if section:
                assert tab.locator(section).count() == 1, f"{name}: no {section}"
                assert_accessible(tab, name=f"{name} ({section})", include=section)
            assert_accessible(tab, name=name)
        # the rejected status reads as such with its words, not by its colour alone
        tab.goto(f"/admin/invoices/invoice/{world['invoice'].pk}/change/")
        rejected = tab.locator(".tarif-timeline-item[data-code='213']")
        assert "needs attention" in rejected.inner_text()
        assert rejected.locator(".tarif-timeline-icon").inner_text() == "✕"


def test_the_portal_invoice_timeline_passes_axe(browser: Browser, live_server, world):
    user = get_user_model().objects.create_user(username="acheteur", email="a@acheteur.example", password="x" * 20)
    CustomerUser.objects.create(user=user, customer=world["buyer"])
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, locale="fr-FR", base_url=live_server.url)
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    try:
        tab = context.new_page()
        response = tab.goto(f"/portal/invoices/{world['invoice'].pk}/", wait_until="load")
        assert response is not None and response.status == 200
        assert tab.locator("[data-section='einvoice-timeline'] ol.tarif-timeline li").count() == 3
        assert_accessible(tab, name="portal invoice timeline", include="[data-section='einvoice-timeline']")
        assert_accessible(tab, name="portal invoice")
    finally:
        context.close()
