"""Second factor at login (TOTP), step-up by TOTP or emailed code, enrolment, staff view-as, CSRF."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.events.models import DomainEvent
from tests.conftest import current_totp

pytestmark = pytest.mark.django_db


def test_a_user_without_totp_gets_a_code_by_email_for_step_up(portal, account, now):
    from datetime import timedelta

    mail.outbox.clear()
    first = portal.get("/portal/verify/?next=/portal/payment-methods/card/")
    assert first.status_code == 200
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["anna@client.example"]
    code = re.search(r"\b(\d{6})\b", mail.outbox[0].body).group(1)

    wrong = portal.post("/portal/verify/", {"otp_token": "000000" if code != "000000" else "111111"})
    assert wrong.status_code == 200 and "errorlist" in wrong.content.decode()
    throttled = portal.post("/portal/verify/", {"otp_token": code})
    assert "Patientez" in throttled.content.decode()  # French customer; django-otp's throttle after a wrong code
    now.shift(timedelta(seconds=5))
    ok = portal.post("/portal/verify/", {"otp_token": code, "next": "/portal/payment-methods/card/"})

    assert ok["Location"] == "/portal/payment-methods/card/"
    assert portal.get("/portal/payment-methods/card/").status_code == 200


def test_step_up_refuses_to_redirect_elsewhere(portal, account):
    mail.outbox.clear()
    portal.get("/portal/verify/")
    code = re.search(r"\b(\d{6})\b", mail.outbox[0].body).group(1)
    response = portal.post("/portal/verify/", {"otp_token": code, "next": "https://evil.example/"})
    assert response["Location"] == "/portal/"


def test_step_up_expires_after_the_configured_minutes(portal, account, settings, now):
    from datetime import timedelta

    from tests.customers.portal.conftest import fresh_step_up

    settings.TARIF_PORTAL_STEP_UP_MINUTES = 5
    fresh_step_up(portal)
    assert portal.get("/portal/payment-methods/card/").status_code == 200
    now.shift(timedelta(minutes=6))
    assert portal.get("/portal/payment-methods/card/")["Location"].startswith("/portal/verify/")


def test_a_totp_user_must_verify_after_the_password(client, account):
    user = account[1]
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)

    response = client.get("/portal/invoices/")
    assert response["Location"] == "/portal/login/verify/?next=%2Fportal%2Finvoices%2F"
    verified = client.post("/portal/login/verify/", {"otp_token": current_totp(device), "next": "/portal/invoices/"})

    assert verified["Location"] == "/portal/invoices/"
    assert client.get("/portal/invoices/").status_code == 200


def test_enrolment_confirms_a_device_and_shows_ten_recovery_codes(portal, account):
    from tests.customers.portal.conftest import fresh_step_up

    fresh_step_up(portal)
    page = portal.get("/portal/security/totp/").content.decode()
    assert "<svg" in page
    device = TOTPDevice.objects.get(user=account[1], confirmed=False)

    done = portal.post("/portal/security/totp/", {"otp_token": current_totp(device)})

    assert done.content.decode().count("<li>") == 10
    device.refresh_from_db()
    assert device.confirmed
    assert portal.get("/portal/").status_code == 200  # this session is verified already


def test_staff_view_as_customer_is_read_only_bannered_and_audited(console, account):
    customer = account[0]

    console.post(f"/portal/view-as/{customer.pk}/")
    page = console.get("/portal/")

    assert page.status_code == 200 and 'id="impersonation-banner"' in page.content.decode()
    assert customer.legal_name in page.content.decode()
    event = DomainEvent.objects.get(type="customer.portal_viewed_as", customer=customer)
    assert event.acting_user == console.user
    refused = console.post(f"/portal/subscriptions/{account[2].pk}/cancel/", {"reason": "other"})
    assert refused.status_code == 403
    account[2].refresh_from_db()
    assert not account[2].cancel_at_period_end
    assert console.post("/portal/details/notifications/", {}).status_code == 403


def test_only_verified_staff_can_view_as_a_customer(client, account, staff_factory):
    staff = staff_factory(username="intern")
    client.force_login(staff)  # password only: no OTP
    assert client.post(f"/portal/view-as/{account[0].pk}/").status_code == 404
    client.force_login(account[1])
    assert client.post(f"/portal/view-as/{account[0].pk}/").status_code == 404


def test_portal_forms_enforce_csrf(account):
    client = Client(enforce_csrf_checks=True)
    client.force_login(account[1])

    assert client.post("/portal/details/notifications/", {}).status_code == 403
    assert client.post(f"/portal/invoices/{account[3].pk}/pay/").status_code == 403
    page = client.get("/portal/details/")
    token = page.cookies["csrftoken"].value
    assert client.post("/portal/details/notifications/", {"csrfmiddlewaretoken": token}).status_code == 302


def test_the_customer_admin_offers_view_as_customer(console, account):
    page = console.get(f"/admin/customers/customer/{account[0].pk}/change/").content.decode()
    assert f'action="/portal/view-as/{account[0].pk}/"' in page


def test_the_console_lists_notifications_read_only(console, account):
    from customers.models import NotificationLog

    NotificationLog.objects.create(customer=account[0], kind="payment_receipt", dedupe_key="payment:1", status="sent")

    listing = console.get("/admin/customers/notificationlog/")

    assert listing.status_code == 200 and account[0].legal_name in listing.content.decode()
    assert console.get("/admin/customers/notificationlog/add/").status_code == 403
