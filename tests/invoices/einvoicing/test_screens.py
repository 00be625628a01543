"""Console and portal screens of e-invoicing: timelines, hub warning, needs attention, admin."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from customers.models import CustomerUser
from invoices.einvoicing.adapters import StatusReport
from invoices.einvoicing.models import DirectoryEntry, PlatformAccount, Transmission
from invoices.einvoicing.services import lifecycle_status_record, transmissions_submit_due
from tests.invoices.helpers import issue

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 11, 8, 0, tzinfo=UTC)


def _status(transmission: Transmission, code: str, *, reason: str = "", origin: str = "platform") -> None:
    lifecycle_status_record(
        transmission=transmission,
        report=StatusReport(
            flow_id="FLOW-1",
            tracking_id=transmission.tracking_id,
            code=code,
            occurred_at=AT,
            origin=origin,  # type: ignore[arg-type]
            reason_code="REJ" if reason else "",
            reason_text=reason,
        ),
    )


def test_the_console_invoice_page_shows_the_status_timeline(console, account, b2b_customer, fr_vat):
    invoice = issue(b2b_customer, [1000])
    transmission = Transmission.objects.get(invoice=invoice)
    _status(transmission, "200")

    html = console.get(f"/admin/invoices/invoice/{invoice.pk}/change/").content.decode()

    assert 'data-section="einvoice-timeline"' in html
    item = _timeline_item(html, "200")
    assert "tarif-timeline-item--neutral" in item and "Deposited" in item and "code 200" in item
    assert "by the platform" in item and '<time datetime="2026-03-11T' in item
    assert "needs attention" not in item
    assert transmission.tracking_id in html


def _timeline_item(html: str, code: str) -> str:
    match = re.search(rf'<li class="tarif-timeline-item[^"]*" data-code="{code}">(.*?)</li>', html, re.S)
    assert match, f"no timeline item for status {code}"
    return match.group(0)


def test_a_rejected_status_reads_as_such_without_colour(console, account, b2b_customer, fr_vat):
    # given statuses in an order the platform may send them: made available, then rejected
    invoice = issue(b2b_customer, [1000])
    transmission = Transmission.objects.get(invoice=invoice)
    _status(transmission, "203")
    _status(transmission, "213", reason="Missing SIREN")

    html = console.get(f"/admin/invoices/invoice/{invoice.pk}/change/").content.decode()

    # then the timeline is an ordered list, and the rejection has an icon and words besides its colour
    assert '<ol class="tarif-timeline"' in html
    assert html.index('data-code="203"') < html.index('data-code="213"')
    rejected = _timeline_item(html, "213")
    assert "tarif-timeline-item--bad" in rejected
    assert '<span class="tarif-timeline-icon" aria-hidden="true">✕</span>' in rejected
    assert "Rejected" in rejected and "needs attention" in rejected
    assert "<code>REJ</code> Missing SIREN" in rejected
    assert 'role="alert"' in html  # the transmission's own "needs attention" line


def test_the_portal_invoice_page_shows_the_statuses(console, client, account, b2b_customer, fr_vat, django_user_model):
    invoice = issue(b2b_customer, [1000])
    transmission = Transmission.objects.get(invoice=invoice)
    _status(transmission, "210", reason="Wrong quantity", origin="buyer")
    user = get_user_model().objects.create_user(username="buyer", email="buyer@client.example", password="x" * 20)
    CustomerUser.objects.create(user=user, customer=b2b_customer)

    portal = client.__class__()
    portal.force_login(user)
    html = portal.get(f"/portal/invoices/{invoice.pk}/").content.decode()

    assert 'data-section="einvoice-timeline"' in html
    refused = _timeline_item(html, "210")
    # (the portal speaks the customer's language: the markup, not the words, is checked here)
    assert "tarif-timeline-item--bad" in refused and 'class="tarif-timeline-flag"' in refused
    assert '<span class="tarif-timeline-icon" aria-hidden="true">✕</span>' in refused
    assert "Wrong quantity" in refused
    assert transmission.tracking_id not in html  # the console's details stay in the console


def test_the_hub_shows_the_directory_address_or_warns_when_none_is_found(console, account, b2b_customer):
    DirectoryEntry.objects.create(
        livemode=True,
        siren="732829320",
        found=False,
        fetched_at=AT,
        expires_at=datetime(2099, 1, 1, tzinfo=UTC),
    )
    html = console.get(f"/admin/customers/customer/{b2b_customer.pk}/change/").content.decode()
    assert 'data-warning="einvoicing"' in html
    assert "No e-invoicing address was found in the directory for SIREN 732829320" in html

    DirectoryEntry.objects.filter(siren="732829320").update(found=True, routing_address="0225:732829320")
    html = console.get(f"/admin/customers/customer/{b2b_customer.pk}/change/").content.decode()
    assert 'data-warning="einvoicing"' not in html
    assert "0225:732829320" in html


def test_a_french_b2b_customer_of_a_brand_without_platform_is_warned(console, b2b_customer):
    html = console.get(f"/admin/customers/customer/{b2b_customer.pk}/change/").content.decode()
    assert "the brand has no active platform account" in html


def test_rejected_invoices_are_listed_in_needs_attention(console, account, b2b_customer, fr_vat):
    invoice = issue(b2b_customer, [1000])
    _status(Transmission.objects.get(invoice=invoice), "213", reason="Invalid buyer SIREN")

    html = console.get("/admin/").content.decode()

    assert "E-invoices rejected, refused or not transmitted" in html
    assert invoice.number in html and "Invalid buyer SIREN" in html


def test_retry_now_from_the_console_submits_a_failed_transmission(
    console, sim, account, customer_factory, brand, fr_vat
):
    unknown = customer_factory(brand=brand, siren="443061841")
    transmission = Transmission.objects.get(invoice=issue(unknown, [1000]))
    transmissions_submit_due()
    transmission.refresh_from_db()
    assert transmission.state == "failed"
    sim.control("directory", siren="443061841", routing_address="0225:443061841")

    response = console.post(
        "/admin/einvoicing/transmission/",
        {"action": "retry_now", "_selected_action": [transmission.pk]},
        follow=True,
    )

    assert "1 transmission queued." in response.content.decode()
    transmission.refresh_from_db()
    assert transmission.state in {"queued", "submitted"}  # the eager worker may already have sent it
    transmissions_submit_due()
    transmission.refresh_from_db()
    assert transmission.state == "submitted"
    # a submitted transmission cannot be retried: a clear message, no change
    response = console.post(
        "/admin/einvoicing/transmission/",
        {"action": "retry_now", "_selected_action": [transmission.pk]},
        follow=True,
    )
    assert "Only a failed or queued transmission can be retried" in response.content.decode()


def test_platform_account_secrets_are_write_only_and_encrypted(console, brand):
    data = {
        "brand": brand.pk,
        "name": "My PA",
        "kind": "rest",
        "base_url": "https://pa.example.com/api",
        "token_url": "https://pa.example.com/oauth/token",
        "client_id": "tarif",
        "client_secret": "top-secret-value",
        "webhook_secret": "hook-secret-value",
        "default_syntax": "factur-x",
        "active": "on",
    }
    response = console.post("/admin/einvoicing/platformaccount/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    account = PlatformAccount.objects.get(name="My PA")
    assert account.client_secret == "top-secret-value"
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM einvoicing_platformaccount WHERE id = %s", [account.pk])
        assert cursor.fetchone()[0].startswith("fernet:")

    page = console.get(f"/admin/einvoicing/platformaccount/{account.pk}/change/").content.decode()
    assert "top-secret-value" not in page and "hook-secret-value" not in page

    # an empty secret on change keeps the stored one
    changed = {**data, "name": "My PA (renamed)", "client_secret": "", "webhook_secret": ""}
    changed.pop("brand")
    assert console.post(f"/admin/einvoicing/platformaccount/{account.pk}/change/", changed).status_code == 302
    account.refresh_from_db()
    assert (account.name, account.client_secret) == ("My PA (renamed)", "top-secret-value")

    # a second account for the same brand and mode is a form error
    again = console.post("/admin/einvoicing/platformaccount/add/", {**data, "name": "Other"})
    assert again.status_code == 200
    assert "already has a platform account in this mode" in again.content.decode()


def test_finance_may_retry_and_support_only_views(staff_factory, account, b2b_customer, fr_vat):
    from django.contrib.auth.models import Group

    finance = staff_factory(username="fin")
    finance.groups.add(Group.objects.get(name="Finance"))
    support = staff_factory(username="sup")
    support.groups.add(Group.objects.get(name="Support"))

    assert finance.has_perm("einvoicing.change_transmission") and finance.has_perm("einvoicing.view_transmission")
    assert support.has_perm("einvoicing.view_transmission")
    assert not support.has_perm("einvoicing.change_transmission")
