"""localstripe, started once per test session on loopback, and settings pointing Tarif at it.

Nothing here may reach the real Stripe: every fixture asserts the SDK's API base is
127.0.0.1 before a test runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit
from urllib.request import Request, urlopen

import pytest
import stripe

RUNNER = Path(__file__).with_name("localstripe_runner.py")
SECRET_KEY = "sk_test_tarifLocalstripeTests0123456789"
WEBHOOK_SECRET = "whsec_tarif_localstripe_tests"

VISA_OK = "4242424242424242"
DECLINED_AT_CHARGE = "4000000000000341"  # attaches, then declined (localstripe's charge-time decline)
DECLINED_AT_ATTACH = "4000000000000002"  # localstripe refuses it when attaching
REQUIRES_ACTION = "4000002760003184"  # 3-D Secure required
SEPA_OK = "DE89370400440532013000"


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory):
    if importlib.util.find_spec("localstripe") is None:
        pytest.skip("localstripe is not installed (it comes with the [dev] extra: pip install -e '.[dev]')")
    workdir = tmp_path_factory.mktemp("localstripe")
    log = (workdir / "localstripe.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(RUNNER), str(workdir / "state.pickle")],
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=workdir,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        if not line.startswith("PORT "):
            raise RuntimeError(f"localstripe did not start (see {workdir / 'localstripe.log'}): {line!r}")
        port = int(line.split()[1])
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def stripe_on(settings, monkeypatch, localstripe_url):
    """Tarif configured for Stripe, with the API at localstripe (asserted to be loopback)."""
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = settings.STRIPE_PUBLIC_KEY = "pk_test_tarifLocalstripeTests0123456789"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_HOST = localstripe_url
    settings.STRIPE_LIVE_MODE = False
    settings.TARIF_PAYMENT_GATEWAY = "stripe"
    monkeypatch.setattr(stripe, "api_base", localstripe_url)  # dj-stripe's calls use the module's base

    from billing.payments.stripe import client

    sdk = client()
    for base in (stripe.api_base, sdk._requestor.base_addresses.get("api")):
        assert urlsplit(base).hostname == "127.0.0.1", f"tests must never call a real Stripe ({base})"
    return sdk


@pytest.fixture
def localstripe(stripe_on, localstripe_url):
    """Raw access to localstripe's API (what Stripe's dashboard or a browser would do)."""
    authorization = "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()

    def call(method: str, path: str, data: dict | None = None):
        query = urlencode(data or {}, doseq=True)
        url = localstripe_url + path + (f"?{query}" if method == "GET" and query else "")
        body = query.encode() if method == "POST" else None
        request = Request(url, data=body, method=method, headers={"Authorization": authorization})
        with urlopen(request, timeout=10) as response:  # noqa: S310 (loopback, asserted above)
            content = response.read()
        return json.loads(content) if content else None

    class LocalStripe:
        url = localstripe_url

        def post(self, path: str, data: dict | None = None):
            return call("POST", path, data)

        def get(self, path: str, params: dict | None = None):
            return call("GET", path, params)

        def events(self, type: str) -> list[dict]:
            return self.get("/v1/events", {"type": type, "limit": 100})["data"]

    return LocalStripe()


def stripe_card(number: str) -> dict:
    return {"card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}}


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header, computed the way Stripe does (HMAC-SHA256 of `t.payload`)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_payload(event: dict) -> bytes:
    return json.dumps(event).encode()


def checkout_submit(localstripe, session_id: str, *, number: str = VISA_OK, iban: str | None = None) -> dict:
    """What the customer does on Checkout's hosted page: enter a test card (or an IBAN) and submit.

    Checkout is emulated by the localstripe runner (localstripe has none); its test-only
    `_complete` route confirms the session's real SetupIntent with the new payment method.
    """
    if iban is not None:
        fields = {"sepa_debit[iban]": iban, "billing_details[name]": "Anna Client"}
    else:
        fields = {"card[number]": number, "card[exp_month]": 12, "card[exp_year]": 2030, "card[cvc]": "123"}
    return localstripe.post(f"/v1/checkout/sessions/{session_id}/_complete", fields)
