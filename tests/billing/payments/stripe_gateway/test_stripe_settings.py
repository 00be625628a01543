"""Which gateway the environment selects: the sandbox without Stripe keys, Stripe with them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
PRINT = (
    "from django.conf import settings; from billing.payments.registry import default_gateway_name, gateway_for; "
    "print(default_gateway_name(), gateway_for(default_gateway_name()).name, getattr(settings, 'STRIPE_API_HOST', '-'))"
)


def _gateway_with(**env: str) -> str:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(("STRIPE_", "TARIF_PAYMENT"))
    }
    environment.update(env, DJANGO_SETTINGS_MODULE="config.settings.test")
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PRINT],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_without_keys_the_sandbox_is_the_default():
    assert _gateway_with() == "sandbox sandbox -"


@pytest.mark.slow
def test_a_secret_key_selects_stripe_and_the_override_wins():
    key = "sk_test_tarifLocalstripeTests0123456789"
    assert _gateway_with(STRIPE_SECRET_KEY=key, STRIPE_API_HOST="http://127.0.0.1:9") == (
        "stripe stripe http://127.0.0.1:9"
    )
    assert _gateway_with(STRIPE_SECRET_KEY=key, TARIF_PAYMENT_GATEWAY="sandbox").startswith("sandbox")
