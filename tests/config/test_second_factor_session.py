"""The session key changes when the second factor is passed (issue 13, hole 8): a session id
learnt between the password step and the code (fixation) is worth nothing afterwards."""

from __future__ import annotations

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import current_totp

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def test_the_console_session_key_changes_after_the_totp_step(client, staff_with_totp):
    user, device = staff_with_totp
    client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
    after_password = client.session.session_key

    verified = client.post("/admin/otp/verify/", {"otp_token": current_totp(device)})

    assert verified.status_code == 302
    assert client.session.session_key != after_password
    assert client.get("/admin/").status_code == 200  # still signed in, now verified


def test_the_console_session_key_changes_after_enrolment(client, staff_factory):
    user = staff_factory(username="newcomer", is_superuser=True)
    client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
    client.get("/admin/otp/enrol/")
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    after_password = client.session.session_key

    enrolled = client.post("/admin/otp/enrol/", {"otp_token": current_totp(device)})

    assert enrolled.status_code == 200 and "recovery" in enrolled.content.decode().lower()
    assert client.session.session_key != after_password
    assert client.get("/admin/").status_code == 200
