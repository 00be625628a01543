"""Production settings pass `check --deploy` and refuse to start half-configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": "x7#kq-" + "a9Vb3Lm2Qz8Rt5Wy1Np4Hs6Jd0Gf7Ke3Cx9Bv2Mn5Zl8Pq1Ru4Tw7Yo0Ia3Sd6Fg",
    "ALLOWED_HOSTS": "billing.example.com",
    "TARIF_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "DATABASE_URL": "sqlite:///:memory:",
}


def run_manage(*args: str, env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only what a production host would have: no test-runner switches such as
    # DJANGO_ALLOW_ASYNC_UNSAFE (set for the browser tests) may leak into the check.
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in PRODUCTION_ENV and key != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    environment.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_the_deploy_check_with_no_warnings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env_overrides=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_a_weak_secret_key():
    result = run_manage("check", env_overrides={**PRODUCTION_ENV, "SECRET_KEY": "short"})

    assert result.returncode != 0
    assert "SECRET_KEY must be a random string" in result.stderr


def test_production_refuses_to_start_without_encryption_keys():
    environment = {**PRODUCTION_ENV, "TARIF_ENCRYPTION_KEYS": ""}

    result = run_manage("check", env_overrides=environment)

    assert result.returncode != 0
    assert "TARIF_ENCRYPTION_KEYS must be set" in result.stderr


def test_every_response_carries_the_security_headers(client, db):
    response = client.get("/healthz")

    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def _script_src(response) -> str:
    policy = response["Content-Security-Policy"]
    return next(part for part in policy.split(";") if part.strip().startswith("script-src"))


def test_only_console_pages_allow_eval_for_alpine(client, db):
    console = client.get("/admin/login/")
    portal_login = client.get("/accounts/login/")
    health = client.get("/healthz")

    assert "'unsafe-eval'" in _script_src(console)
    for response in (portal_login, health):
        assert "'unsafe-eval'" not in _script_src(response)
        assert _script_src(response).split() == ["script-src", "'self'"]
    for response in (console, portal_login, health):
        assert "'unsafe-inline'" not in _script_src(response)
