"""Portal (issue 13, hole 8): the session key changes after the second factor, and the brand
logo is served with the type found in its bytes under a fixed name."""

from __future__ import annotations

import io

import pytest
from django.core.files.base import ContentFile
from django_otp.plugins.otp_totp.models import TOTPDevice
from PIL import Image

from invoices.selectors import brand_for_customer
from tests.conftest import current_totp
from tests.customers.portal.conftest import fresh_step_up

pytestmark = pytest.mark.django_db


def test_the_session_key_changes_after_the_login_code(client, account):
    user = account[1]
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    after_password = client.session.session_key

    verified = client.post("/portal/login/verify/", {"otp_token": current_totp(device), "next": "/portal/invoices/"})

    assert verified["Location"] == "/portal/invoices/"
    assert client.session.session_key != after_password
    assert client.get("/portal/invoices/").status_code == 200


def test_the_session_key_changes_after_totp_enrolment(portal, account):
    fresh_step_up(portal)
    portal.get("/portal/security/totp/")
    device = TOTPDevice.objects.get(user=account[1], confirmed=False)
    before = portal.session.session_key

    done = portal.post("/portal/security/totp/", {"otp_token": current_totp(device)})

    assert done.status_code == 200
    assert portal.session.session_key != before
    assert portal.get("/portal/invoices/").status_code == 200


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def set_logo(account, name: str, content: bytes) -> None:
    brand = brand_for_customer(customer=account[0])
    brand.logo.save(name, ContentFile(content), save=True)


def test_a_raster_logo_is_served_with_its_detected_type_and_a_fixed_name(portal, account):
    # Given a PNG uploaded under a misleading name
    set_logo(account, "Quarterly report.html", png_bytes())

    response = portal.get("/portal/brand/logo/")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == 'inline; filename="logo.png"'
    assert b"".join(response.streaming_content if response.streaming else [response.content]) == png_bytes()


def test_an_svg_logo_is_an_attachment_under_a_locked_down_policy(portal, account):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>'
    set_logo(account, "logo.png", svg)

    response = portal.get("/portal/brand/logo/")

    assert response["Content-Type"] == "image/svg+xml"
    assert response["Content-Disposition"] == 'attachment; filename="logo.svg"'
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "sandbox" in response["Content-Security-Policy"]


def test_a_stored_logo_that_is_not_an_image_is_not_served(portal, account):
    # Given a file that bypassed the upload checks (an older version, a restored backup...)
    set_logo(account, "logo.png", b"<html><script>alert(document.cookie)</script></html>")

    response = portal.get("/portal/brand/logo/")

    assert response.status_code == 404
