"""Behind a reverse proxy (issue 13, hole 7): one trusted-proxy setting gives the client's
address to django-axes, the audit log and /metrics; /metrics needs its token unless opened."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from config.audit.context import client_ip

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def request_from(remote_addr: str, forwarded_for: str | None = None):
    extra = {"REMOTE_ADDR": remote_addr}
    if forwarded_for is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("trusted", "remote_addr", "forwarded_for", "expected"),
    [
        # No proxy configured: X-Forwarded-For is whatever the client wrote, ignored.
        ([], "198.51.100.7", "10.0.0.1", "198.51.100.7"),
        # The proxy on the same host: the address it appended is the client.
        (["127.0.0.1"], "127.0.0.1", "198.51.100.7", "198.51.100.7"),
        # A client that prepends a fake hop does not pick its address: rightmost untrusted wins.
        (["127.0.0.1"], "127.0.0.1", "10.0.0.1, 198.51.100.7", "198.51.100.7"),
        # Two proxies (a load balancer in a trusted network, then the local one).
        (["127.0.0.1", "10.0.0.0/8"], "127.0.0.1", "1.2.3.4, 198.51.100.7, 10.1.2.3", "198.51.100.7"),
        # A request reaching us directly from an untrusted peer: its header means nothing.
        (["127.0.0.1"], "198.51.100.7", "127.0.0.1", "198.51.100.7"),
        # The proxy itself calling us without a header (a health check): the proxy's address.
        (["127.0.0.1"], "127.0.0.1", None, "127.0.0.1"),
        # Garbage in the header is not an address: stop at it rather than trust what lies beyond.
        (["127.0.0.1"], "127.0.0.1", "198.51.100.7, not-an-ip", "127.0.0.1"),
    ],
)
def test_the_client_address_is_the_rightmost_untrusted_hop(settings, trusted, remote_addr, forwarded_for, expected):
    settings.TARIF_TRUSTED_PROXIES = trusted

    assert client_ip(request_from(remote_addr, forwarded_for)) == expected


def test_metrics_need_the_token_even_from_loopback(client, settings):
    # Given the defaults: a token, and no address opened explicitly
    settings.TARIF_METRICS_TOKEN = "s3cret-metrics-token"

    # Then a request from the loopback (what every client looks like behind a local proxy) is refused
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 403
    assert (
        client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token").status_code
        == 200
    )


def test_metrics_are_closed_when_no_token_is_configured(client, settings):
    settings.TARIF_METRICS_TOKEN = ""

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_metrics_opened_to_an_address_see_the_client_behind_the_proxy(client, settings):
    settings.TARIF_METRICS_TOKEN = ""
    settings.TARIF_METRICS_ALLOWED_IPS = ["127.0.0.1", "192.0.2.10"]
    settings.TARIF_TRUSTED_PROXIES = ["127.0.0.1"]

    # A stranger through the local proxy is not the loopback
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 403
    # The monitoring host, through the same proxy
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.10").status_code == 200


def test_the_metrics_default_opens_no_address():
    from django.conf import settings

    assert settings.TARIF_METRICS_ALLOWED_IPS == []


def test_axes_locks_the_attacker_behind_the_proxy_not_the_staff_member(client, settings, staff_with_totp):
    # Given the proxy on the same host, and an attacker guessing the staff member's password
    settings.TARIF_TRUSTED_PROXIES = ["127.0.0.1"]
    user, _device = staff_with_totp
    attacker = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.66"}
    for _attempt in range(settings.AXES_FAILURE_LIMIT + 1):
        client.post("/admin/login/", {"username": user.username, "password": "wrong guess"}, **attacker)
    locked = client.post("/admin/login/", {"username": user.username, "password": PASSWORD}, **attacker)
    assert locked.status_code in (403, 429) or "locked" in locked.content.decode().lower()

    # When the staff member signs in from their own address, through the same proxy
    from django.test import Client

    staff = Client()
    response = staff.post(
        "/admin/login/",
        {"username": user.username, "password": PASSWORD},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="192.0.2.44",
    )

    # Then the password step succeeds (on to the second factor)
    assert response.status_code == 302, response.content.decode()[:500]
    assert "otp" in response["Location"]


def test_axes_records_the_client_address_not_the_proxy(client, settings, staff_with_totp):
    from axes.models import AccessAttempt

    settings.TARIF_TRUSTED_PROXIES = ["127.0.0.1"]
    user, _device = staff_with_totp

    client.post(
        "/admin/login/",
        {"username": user.username, "password": "wrong guess"},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="198.51.100.66",
    )

    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["198.51.100.66"]


def test_the_audit_log_records_the_client_behind_the_proxy(console, settings, customer):
    from django.urls import reverse

    from config.audit.models import AuditEntry
    from tests.audit.test_audit_log import change_form_data

    settings.TARIF_TRUSTED_PROXIES = ["127.0.0.1"]
    url = reverse("admin:customers_customer_change", args=[customer.pk])
    data = change_form_data(console, url) | {"legal_name": "Derrière le proxy"}

    response = console.post(url, data, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.0.0.1, 198.51.100.23")

    assert response.status_code == 302
    assert AuditEntry.objects.get(action="change", target_type="customers.customer").ip_address == "198.51.100.23"


def test_the_portal_sign_in_rate_limits_use_the_same_client_address(settings):
    from allauth.account.adapter import get_adapter

    settings.TARIF_TRUSTED_PROXIES = ["127.0.0.1"]
    request = request_from("127.0.0.1", "198.51.100.7")

    assert get_adapter(request).get_client_ip(request) == "198.51.100.7"
