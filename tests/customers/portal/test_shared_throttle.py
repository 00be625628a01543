"""Issue 14: one throttle rule for every second-factor page (config/mfa.py).

The console's sign-in, a console sensitive action (bank details), the portal's sign-in and
the portal's step-up by emailed code all count wrong codes the same way and lock out after
the same number of failures, for the same time, with the lockout message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import current_totp
from tests.invoices.rendering.test_admin_branding import brand_form

pytestmark = pytest.mark.django_db

FAILURES = 3
PASSWORD = "correct horse battery staple"


@dataclass
class Surface:
    name: str
    post: Callable[[str], object]  # post(code) -> response
    right_code: Callable[[], str]
    device: object
    errors: Callable[[object], list[str]]


def form_errors(response) -> list[str]:  # type: ignore[no-untyped-def]
    return list(response.context["form"].errors.get("otp_token", []))


def admin_form_errors(response) -> list[str]:  # type: ignore[no-untyped-def]
    return list(response.context["adminform"].form.errors.get("otp_token", []))


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def lockout_profile(surface: Surface, now) -> tuple[int, bool, int | None]:  # type: ignore[no-untyped-def]
    """(wrong codes counted, right code refused right after them, seconds the message asks to wait)."""
    for failure in range(1, FAILURES + 1):
        surface.post(wrong(surface.right_code()))
        if failure < FAILURES:
            now.shift(timedelta(seconds=2 ** (failure - 1) + 1))  # past the delay: the next one counts
    response = surface.post(surface.right_code())
    surface.device.refresh_from_db()
    errors = getattr(response, "context", None) and surface.errors(response)
    refused = bool(errors)
    seconds = re.search(r"\d+", errors[0]) if errors else None
    return surface.device.throttling_failure_count, refused, int(seconds.group()) if seconds else None


@pytest.fixture
def surfaces(staff_factory, make_portal_account, brand, now) -> dict[str, Callable[[], Surface]]:
    def console_sign_in() -> Surface:
        user = staff_factory(username="sign-in", is_superuser=True)
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        client = Client()
        client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
        return Surface(
            "console sign-in",
            lambda code: client.post("/admin/otp/verify/", {"otp_token": code}),
            lambda: current_totp(device),
            device,
            form_errors,
        )

    def console_bank_details() -> Surface:
        user = staff_factory(username="finance", is_superuser=True)
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        client = Client()
        client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
        assert client.post("/admin/otp/verify/", {"otp_token": current_totp(device)}).status_code == 302
        now.shift(timedelta(seconds=31))
        url = f"/admin/invoices/brand/{brand.pk}/change/"
        return Surface(
            "console bank details",
            lambda code: client.post(url, brand_form(brand, iban="FR7630006000011234567890189", otp_token=code)),
            lambda: current_totp(device),
            device,
            admin_form_errors,
        )

    def portal_sign_in() -> Surface:
        _customer, user, _subscription, _invoice = make_portal_account("totp@client.example")
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        client = Client()
        client.force_login(user)
        return Surface(
            "portal sign-in",
            lambda code: client.post("/portal/login/verify/", {"otp_token": code}),
            lambda: current_totp(device),
            device,
            form_errors,
        )

    def portal_step_up_by_email() -> Surface:
        from django_otp.plugins.otp_email.models import EmailDevice

        _customer, user, _subscription, _invoice = make_portal_account("mail@client.example")
        client = Client()
        client.force_login(user)
        mail.outbox.clear()
        client.get("/portal/verify/")
        code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
        return Surface(
            "portal step-up by email",
            lambda token: client.post("/portal/verify/", {"otp_token": token}),
            lambda: code,
            EmailDevice.objects.get(user=user),
            form_errors,
        )

    return {
        "console sign-in": console_sign_in,
        "console bank details": console_bank_details,
        "portal sign-in": portal_sign_in,
        "portal step-up by email": portal_step_up_by_email,
    }


def assert_one_rule(profiles: dict[str, tuple[int, bool, int | None]]) -> None:
    assert len(set(profiles.values())) == 1, f"the second-factor pages follow different rules: {profiles}"


def test_console_and_portal_lock_out_after_the_same_failures_for_the_same_time(surfaces, now):
    profiles = {name: lockout_profile(make(), now) for name, make in surfaces.items()}

    assert_one_rule(profiles)
    counted, refused, wait = next(iter(profiles.values()))
    assert (counted, refused) == (FAILURES, True)
    assert wait == 2 ** (FAILURES - 1) + 1  # factor 1 x 2^(n-1) seconds, rounded up


def test_after_the_delay_the_right_code_works_everywhere(surfaces, now):
    for name, make in surfaces.items():
        surface = make()
        lockout_profile(surface, now)
        now.shift(timedelta(seconds=2**FAILURES + 1))
        response = surface.post(surface.right_code())
        assert response.status_code == 302, name
        surface.device.refresh_from_db()
        assert surface.device.throttling_failure_count == 0, name


def test_negative_control_a_page_with_its_own_rule_is_caught(surfaces, now, settings):
    # one kind of device throttled differently (what a page with its own rule would do)
    settings.OTP_EMAIL_THROTTLE_FACTOR = 0

    profiles = {name: lockout_profile(make(), now) for name, make in surfaces.items()}

    with pytest.raises(AssertionError, match="different rules"):
        assert_one_rule(profiles)
    assert profiles["portal step-up by email"][1] is False  # the right code got through at once
