"""Log scrubbing, password rules, session timeouts, maintenance mode, security headers, /metrics."""

from __future__ import annotations

import logging
import time

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse

from config.audit.logging import RequestIdFilter, ScrubbingFilter, scrub
from config.ops.middleware import AUTH_AT, LAST_SEEN

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("charging card 4242 4242 4242 4242 now", "4242 4242 4242 4242"),
        ("card=4000000000000341", "4000000000000341"),
        ("iban FR76 3000 6000 0112 3456 7890 189 saved", "FR76 3000 6000 0112 3456 7890 189"),
        ("IBAN DE89370400440532013000", "DE89370400440532013000"),
        ("mail sent to jeanne.dupont@example.fr", "jeanne.dupont@example.fr"),
        ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456", "abcdefghijklmnopqrstuvwxyz123456"),
        ("key sk_test_4eC39HqLyjWDarjtT1zdp7dc leaked", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        ("token fernet:gAAAAABnA1b2c3d4e5f6g7h8i9j0klmnopqrstuvwxyz", "gAAAAABnA1b2c3d4e5f6g7h8i9j0"),
    ],
)
def test_log_scrubbing_masks_secrets_and_personal_data(text, secret):
    assert secret not in scrub(text)


def test_scrubbing_keeps_ordinary_messages():
    message = "billing run 42 finished: 1200 invoices in 3.5 s, invoice F-2026-000123"

    assert scrub(message) == message


def test_the_filter_scrubs_arguments_and_tracebacks():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "paying with %s", ("4242424242424242",), None)
    try:
        raise ValueError("customer jeanne@example.fr")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()

    ScrubbingFilter().filter(record)
    RequestIdFilter().filter(record)

    assert "4242424242424242" not in record.getMessage()
    assert "jeanne@example.fr" not in record.exc_text
    assert record.request_id == "-"


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short-pass1", "password_too_short"),
        ("x" * 129 + "Ab1", "password_too_long"),
        ("password1234", "password_too_common"),
        ("123456789012345", "password_entirely_numeric"),
    ],
)
def test_password_rules_follow_asvs_level_2(password, code):
    with pytest.raises(ValidationError) as refused:
        validate_password(password)

    assert code in [error.code for error in refused.value.error_list]


def test_a_long_passphrase_with_unicode_is_accepted():
    validate_password("des chaussettes archi-sèches ☂ " + "x" * 90)  # 121 characters, no composition rules


def test_an_operator_breached_list_is_honoured(settings, tmp_path):
    breached = tmp_path / "breached.txt"
    breached.write_text("Tr0ub4dour&3-corporate\n")
    settings.AUTH_PASSWORD_VALIDATORS = [
        {"NAME": "config.ops.passwords.BreachedPasswordValidator", "OPTIONS": {"password_list_path": str(breached)}}
    ]

    with pytest.raises(ValidationError):
        validate_password("tr0ub4dour&3-corporate")


def age_session(client, *, idle: float = 0, since_login: float = 0) -> None:
    session = client.session
    now = time.time()
    session[LAST_SEEN] = now - idle
    session[AUTH_AT] = now - since_login
    session.save()


def test_a_staff_session_idle_past_its_timeout_is_signed_out(console, settings):
    settings.TARIF_SESSION_IDLE_TIMEOUT_STAFF = 600
    assert console.get(reverse("admin:index")).status_code == 200
    age_session(console, idle=601)

    response = console.get(reverse("admin:index"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    assert "_auth_user_id" not in console.session


def test_a_staff_session_past_its_absolute_timeout_is_signed_out_even_when_busy(console, settings):
    settings.TARIF_SESSION_ABSOLUTE_TIMEOUT_STAFF = 3600
    age_session(console, idle=1, since_login=3601)

    response = console.get(reverse("admin:index"))

    assert response.status_code == 302
    assert "_auth_user_id" not in console.session


def test_an_active_session_stays(console, settings):
    settings.TARIF_SESSION_IDLE_TIMEOUT_STAFF = 600
    age_session(console, idle=599, since_login=599)

    assert console.get(reverse("admin:index")).status_code == 200


def test_a_customer_session_has_its_own_timeouts(client, user, settings):
    settings.TARIF_SESSION_IDLE_TIMEOUT_CUSTOMER = 60
    client.force_login(user)
    age_session(client, idle=61)

    response = client.get(reverse("portal:home"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert "_auth_user_id" not in client.session


def test_maintenance_mode_keeps_reads_and_refuses_writes(console, customer, settings, tmp_path):
    settings.TARIF_MAINTENANCE_FLAG_FILE = str(tmp_path / "maintenance")
    from django.core.management import call_command

    call_command("maintenance", "on", "--reason", "database upgrade")
    url = reverse("admin:customers_customer_change", args=[customer.pk])

    assert console.get(url).status_code == 200
    refused = console.post(url, {"legal_name": "Changed"})
    api = console.post("/api/v1/customers/", {}, HTTP_ACCEPT="application/json")

    assert refused.status_code == 503 and refused["Retry-After"]
    assert b"maintenance" in refused.content
    assert api.status_code == 503 and api["Content-Type"] == "application/problem+json"
    customer.refresh_from_db()
    assert customer.legal_name != "Changed"
    call_command("maintenance", "off")
    assert console.post(url, {"legal_name": ""}).status_code == 200  # back to normal validation


@pytest.mark.parametrize("path", ["/healthz", "/admin/login/", "/accounts/login/", "/metrics"])
def test_security_headers_on_every_kind_of_page(client, path):
    response = client.get(path)

    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Request-ID"]


def test_metrics_are_refused_to_strangers_and_served_with_the_token(client, settings):
    settings.TARIF_METRICS_ALLOWED_IPS = []
    settings.TARIF_METRICS_TOKEN = "s3cret-metrics-token"

    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")

    assert response.status_code == 200
    body = response.content.decode()
    assert "django_http_requests_latency_seconds_by_view_method" in body
    assert "tarif_payment_attempts_settled_24h" in body


def test_metrics_report_the_last_billing_run(client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import BillingRun

    run = BillingRun.objects.create(as_of=timezone.now(), status="done", invoices_created=50, failures=1)
    BillingRun.objects.filter(pk=run.pk).update(finished_at=run.started_at + timedelta(seconds=10))
    settings.TARIF_METRICS_ALLOWED_IPS = ["127.0.0.1"]  # opened explicitly (closed by default)

    body = client.get("/metrics").content.decode()

    assert "tarif_billing_run_last_duration_seconds 10.0" in body
    assert "tarif_billing_run_last_invoices_per_second 5.0" in body
    assert "tarif_billing_run_last_failures 1.0" in body


def test_the_operations_page_shows_runs_and_a_chart(console):
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import BillingRun

    run = BillingRun.objects.create(as_of=timezone.now(), status="done", invoices_created=80)
    BillingRun.objects.filter(pk=run.pk).update(finished_at=run.started_at + timedelta(seconds=4))

    response = console.get(reverse("operations"))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'data-chart="billing-runs-chart"' in content  # drawn by static/tarif/admin/reports.js
    assert "20.0" in content  # invoices per second


def test_beat_tasks_pause_during_maintenance(settings, tmp_path):
    from billing.models import BillingRun
    from billing.tasks import billing_run_scheduled

    settings.TARIF_MAINTENANCE_MODE = True

    assert billing_run_scheduled.apply().get() == 0
    assert not BillingRun.objects.exists()


def test_customer_sign_in_is_throttled_too(client, user, settings):
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    url = reverse("account_login")
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"login": user.email, "password": "wrong password here"})

    locked = client.post(url, {"login": user.email, "password": "correct horse battery staple"})

    # allauth's own limit (5 failures per account) answers before django-axes' lockout does
    assert "_auth_user_id" not in client.session
    assert locked.status_code == 429 or "Too many failed login attempts" in locked.content.decode()
