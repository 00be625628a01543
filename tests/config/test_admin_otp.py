"""The operator console demands password + TOTP, and throttles guessing."""

from __future__ import annotations

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.admin_site import issue_recovery_codes
from tests.conftest import current_totp

PASSWORD = "correct horse battery staple"
pytestmark = pytest.mark.django_db


def password_login(client, username: str, password: str = PASSWORD):
    return client.post(reverse("admin:login"), {"username": username, "password": password})


def test_admin_is_refused_after_password_only(client, staff_with_totp):
    user, _device = staff_with_totp

    response = password_login(client, user.username)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:otp_verify"))
    index = client.get(reverse("admin:index"))
    assert index.status_code == 302
    assert reverse("admin:login") in index["Location"]
    customers = client.get(reverse("admin:customers_customer_changelist"))
    assert customers.status_code == 302


def test_admin_opens_with_a_valid_totp_code(client, staff_with_totp):
    user, device = staff_with_totp
    password_login(client, user.username)

    response = client.post(reverse("admin:otp_verify"), {"otp_token": current_totp(device), "next": "/admin/"})

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get(reverse("admin:index")).status_code == 200
    assert client.get(reverse("admin:customers_customer_changelist")).status_code == 200


def test_a_wrong_code_is_refused(client, staff_with_totp):
    user, device = staff_with_totp
    password_login(client, user.username)
    wrong = f"{(int(current_totp(device)) + 1) % 1_000_000:06d}"

    response = client.post(reverse("admin:otp_verify"), {"otp_token": wrong})

    assert response.status_code == 200
    assert "Invalid or already used code" in response.content.decode()
    assert client.get(reverse("admin:index")).status_code == 302


def test_a_replayed_code_is_refused(client, staff_with_totp, client_factory=None):
    from django.test import Client

    user, device = staff_with_totp
    code = current_totp(device)
    password_login(client, user.username)
    assert client.post(reverse("admin:otp_verify"), {"otp_token": code}).status_code == 302

    attacker = Client()
    password_login(attacker, user.username)
    response = attacker.post(reverse("admin:otp_verify"), {"otp_token": code})

    assert response.status_code == 200
    assert attacker.get(reverse("admin:index")).status_code == 302


def test_repeated_wrong_codes_are_throttled(client, staff_with_totp):
    user, device = staff_with_totp
    password_login(client, user.username)
    client.post(reverse("admin:otp_verify"), {"otp_token": "000000"})
    client.post(reverse("admin:otp_verify"), {"otp_token": "111111"})

    throttled = client.post(reverse("admin:otp_verify"), {"otp_token": current_totp(device)})

    assert throttled.status_code == 200, "a correct code must wait out the throttle delay"
    assert "Too many wrong codes" in throttled.content.decode()
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=2)):
        device.refresh_from_db()
        later = client.post(reverse("admin:otp_verify"), {"otp_token": current_totp(device)})
    assert later.status_code == 302


def test_a_recovery_code_works_once(client, staff_with_totp):
    user, _device = staff_with_totp
    code = issue_recovery_codes(user=user)[0]
    password_login(client, user.username)

    assert client.post(reverse("admin:otp_verify"), {"otp_token": code}).status_code == 302
    client.logout()
    password_login(client, user.username)
    response = client.post(reverse("admin:otp_verify"), {"otp_token": code})

    assert response.status_code == 200
    assert StaticDevice.objects.get(user=user).token_set.count() == 9


def test_staff_without_a_device_is_sent_to_enrol_and_gets_recovery_codes(client, staff_factory):
    user = staff_factory(username="newcomer", is_superuser=True)

    response = password_login(client, user.username)
    assert response["Location"].startswith(reverse("admin:otp_enrol"))
    page = client.get(reverse("admin:otp_enrol"))
    assert b"<svg" in page.content
    device = TOTPDevice.objects.get(user=user, confirmed=False)

    wrong = client.post(reverse("admin:otp_enrol"), {"otp_token": "123"})
    assert wrong.status_code == 200 and not TOTPDevice.objects.get(pk=device.pk).confirmed
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=1)):  # past the throttle delay
        confirmed = client.post(reverse("admin:otp_enrol"), {"otp_token": current_totp(device)})

    assert confirmed.status_code == 200
    assert len(confirmed.context["codes"]) == 10
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert client.get(reverse("admin:index")).status_code == 200


def test_non_staff_users_never_reach_the_console(client, user_factory):
    user = user_factory(username="customer-user")

    response = password_login(client, user.username)

    assert response.status_code == 200  # the login form again, with an error
    assert client.get(reverse("admin:index")).status_code == 302
    assert client.get(reverse("admin:otp_verify")).status_code == 302


def test_repeated_password_failures_lock_the_account_out(client, staff_with_totp, settings):
    user, device = staff_with_totp
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert password_login(client, user.username, "wrong password").status_code == 200
    assert password_login(client, user.username, "wrong password").status_code == 429

    locked = password_login(client, user.username)  # even the right password now

    assert locked.status_code == 429
    assert client.get(reverse("admin:otp_verify")).status_code == 302  # not even half logged in


def test_open_redirects_are_ignored_after_verification(client, staff_with_totp):
    user, device = staff_with_totp
    password_login(client, user.username)

    response = client.post(
        reverse("admin:otp_verify"), {"otp_token": current_totp(device), "next": "https://evil.example/"}
    )

    assert response["Location"] == reverse("admin:index")
