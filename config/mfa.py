"""The second factor, in one place: the console's sign-in, its sensitive actions (refunds,
write-offs, bank details) and the portal's sign-in and step-up all call this module.

- `verify_code`: a TOTP or recovery code (or an emailed code, for the portal's EmailDevice)
  checked against the user's confirmed devices.
- One throttle rule: django-otp's own throttling on every device, with one factor
  (TARIF_MFA_THROTTLE_FACTOR, which settings copy into OTP_TOTP/STATIC/EMAIL_THROTTLE_FACTOR):
  after n wrong codes a device refuses every code, right or wrong, for factor x 2^(n-1)
  seconds, and one wrong code counts once on each device it was tried on, whichever page
  it was typed into. `lockout_message` is the one text that says how long to wait.
- One freshness rule: a sensitive action needs a code typed within TARIF_MFA_FRESH_MINUTES
  (`is_fresh`); the session keeps when (`SESSION_KEY`, `mark_fresh`, `session_verified_at`).
  Services take that time as their proof (`otp_verified_at`) and refuse a stale or missing one,
  so every entry point obeys the same rule.

A leaf module: it imports django and django-otp only, never a product app.
"""

from __future__ import annotations

import io
import logging
from base64 import b32encode
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django_otp import devices_for_user
from django_otp import login as otp_login
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

logger = logging.getLogger("tarif.security")

# When the signed-in user last typed a code for a sensitive action (epoch seconds, wall clock).
SESSION_KEY = "tarif_mfa_verified_at"
RECOVERY_CODE_COUNT = 10
# A verification a few seconds "in the future" is clock skew between workers, not forgery.
CLOCK_SKEW = timedelta(seconds=5)


def fresh_minutes() -> int:
    return int(getattr(settings, "TARIF_MFA_FRESH_MINUTES", 5))


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of one code: the device that accepted it, or how long the throttle asks to wait."""

    device: Device | None
    wait_seconds: int = 0
    verified_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.device is not None

    @property
    def locked(self) -> bool:
        return self.device is None and self.wait_seconds > 0


def lockout_message(wait_seconds: int) -> str:
    return gettext("Too many wrong codes. Wait %(seconds)d seconds and try again.") % {"seconds": wait_seconds}


def refusal_message(verification: Verification, invalid: str | None = None) -> str:
    """The form error for a refused code: the lockout text while throttled, else `invalid`."""
    if verification.locked:
        return lockout_message(verification.wait_seconds)
    return invalid or gettext("Invalid or already used code. Wait for the next code and try again.")


def _normalise(token: str | None) -> str:
    return (token or "").strip().replace(" ", "")


def verify_code(*, user: Any, token: str | None, devices: Iterable[Device] | None = None) -> Verification:
    """Check `token` against `devices` (default: the user's confirmed devices, TOTP and recovery).

    django-otp refuses every code on a device inside its throttle delay (without counting it)
    and counts a wrong code on every device that was open to it.
    """
    token = _normalise(token)
    wait_seconds = 0
    candidates = list(devices) if devices is not None else list(devices_for_user(user, confirmed=True))
    now = timezone.now()
    for device in candidates:
        allowed, details = device.verify_is_allowed()
        if allowed:
            if token and device.verify_token(token):
                logger.info("second factor verified: user=%s device=%s", getattr(user, "pk", None), device.pk)
                return Verification(device=device, verified_at=timezone.now())
        elif details and details.get("locked_until"):
            remaining = (details["locked_until"] - now).total_seconds()
            wait_seconds = max(wait_seconds, int(remaining) + 1)
    logger.warning("second factor refused: user=%s locked=%s", getattr(user, "pk", None), bool(wait_seconds))
    return Verification(device=None, wait_seconds=wait_seconds)


def is_fresh(verified_at: datetime | None, *, now: datetime | None = None) -> bool:
    """True when a code was verified within TARIF_MFA_FRESH_MINUTES (wall clock: a test clock
    must not make an old verification look fresh)."""
    if verified_at is None:
        return False
    now = now or timezone.now()
    return now - timedelta(minutes=fresh_minutes()) <= verified_at <= now + CLOCK_SKEW


def mark_fresh(request: HttpRequest, at: datetime | None = None) -> datetime:
    at = at or timezone.now()
    request.session[SESSION_KEY] = at.timestamp()
    return at


def session_verified_at(request: HttpRequest) -> datetime | None:
    """When this session last verified a code for a sensitive action (fresh or not)."""
    stored = getattr(request, "session", {}).get(SESSION_KEY)
    if not isinstance(stored, int | float | str) or stored == "":
        return None
    try:
        return datetime.fromtimestamp(float(stored), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def session_is_fresh(request: HttpRequest) -> bool:
    return is_fresh(session_verified_at(request))


def step_up(request: HttpRequest, token: str | None) -> tuple[datetime | None, Verification | None]:
    """The proof a sensitive console action hands to its service.

    With a code: verify it; on success the session is marked fresh and the time returned,
    on failure (None, the refused verification) for the form error. Without a code: the
    session's last verification time, fresh or not (the service judges), and no verification.
    """
    if _normalise(token):
        verification = verify_code(user=request.user, token=token)
        if not verification.ok:
            return None, verification
        return mark_fresh(request, verification.verified_at), verification
    return session_verified_at(request), None


def second_factor_login(request: HttpRequest, device: Device) -> None:
    """Mark the session verified by `device` (django-otp), under a new session key.

    The key was last changed at the password step; rotating it again here means a session
    id learnt or planted before the second factor (fixation) never becomes a verified one.
    """
    otp_login(request, device)
    request.session.cycle_key()


def confirm_device(*, user: Any, device: Device, token: str | None) -> Verification:
    """Enrolment: the first code from a new (unconfirmed) device, under the same throttle."""
    verification = verify_code(user=user, token=token, devices=[device])
    if verification.ok:
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    return verification


def totp_device_for_enrolment(user: Any) -> TOTPDevice:
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    return device


def issue_recovery_codes(*, user: Any) -> list[str]:
    """Replace the user's recovery codes with a fresh set and return them (shown once)."""
    device, _created = StaticDevice.objects.get_or_create(user=user, name="recovery", defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def qr_svg(data: str) -> str:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


def base32_secret(device: TOTPDevice) -> str:
    return b32encode(device.bin_key).decode().rstrip("=")


def is_verified(user: Any) -> bool:
    # OTPMiddleware adds is_verified(); a user logged in during this very request
    # (the password step) has not been through it yet, and is not verified.
    check = getattr(user, "is_verified", None)
    return bool(check and check())


class OtpField(forms.CharField):
    """The console's "two-factor code" field on forms of sensitive actions."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", gettext_lazy("Two-factor code"))
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text",
            gettext_lazy("A new code from your authenticator app (required for refunds above the approval threshold)."),
        )
        kwargs.setdefault("widget", forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))
        super().__init__(**kwargs)
