from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import current_totp
from tests.reports.scenario import build_scenario


@pytest.fixture
def scenario(customer_factory, price_factory, tax_rate):
    """The hand-built history of tests/reports/scenario.py."""
    return build_scenario(customer_factory, price_factory)


@pytest.fixture
def console_as(client, staff_factory):
    """Sign a staff member of `group` (None: no group) in to the console, password + TOTP."""

    def sign_in(group: str | None):
        user = staff_factory(username=f"staff-{group or 'none'}".lower().replace(" ", "-"))
        if group:
            user.groups.add(Group.objects.get(name=group))
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        client.post("/admin/login/", {"username": user.username, "password": "correct horse battery staple"})
        assert client.post("/admin/otp/verify/", {"otp_token": current_totp(device)}).status_code == 302
        return client

    return sign_in
