"""Outbound webhook targets (issue 13, hole 6): public HTTPS hosts only, checked at
registration and again at send time, no redirects, no response body kept."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.utils import timezone

from billing.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from billing.services.webhooks import WebhookError, webhook_endpoint_create, webhook_endpoint_update, webhooks_dispatch
from config.events.log import event_record

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
PUBLIC_IP = "93.184.216.34"
_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture
def dns(monkeypatch):
    """A resolver with a few made-up names; anything else goes to the real one."""
    names: dict[str, list[str]] = {
        "internal.corp.test": ["10.1.2.3"],
        "metadata.corp.test": ["169.254.169.254"],
        "mixed.corp.test": [PUBLIC_IP, "127.0.0.1"],
        "public.corp.test": [PUBLIC_IP],
    }

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if isinstance(host, bytes):
            host = host.decode()
        if host in names:
            return [
                (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0))
                for ip in names[host]
            ]
        return _real_getaddrinfo(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


REFUSED_EVERYWHERE = [
    "http://10.0.0.5/hooks",
    "https://10.0.0.5/hooks",
    "https://192.168.1.10/hooks",
    "https://172.16.0.1/hooks",
    "https://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/hooks",  # carrier-grade NAT
    "https://224.0.0.1/hooks",  # multicast
    "https://240.0.0.1/hooks",  # reserved
    "https://0.0.0.0/hooks",
    "https://[fe80::1]/hooks",
    "https://[fc00::1]/hooks",
    "https://[::ffff:10.0.0.1]/hooks",  # IPv4-mapped IPv6
    "https://[64:ff9b::a00:1]/hooks",  # NAT64 of 10.0.0.1
    "https://internal.corp.test/hooks",
    "https://metadata.corp.test/hooks",
    "http://mixed.corp.test/hooks",  # plain HTTP to a name that is not only loopback
    "https://user:secret@public.corp.test/hooks",  # credentials in the URL
    "https://user:secret@127.0.0.1/hooks",
    "ftp://public.corp.test/hooks",
    "file:///etc/passwd",
    "gopher://public.corp.test/",
]
REFUSED_IN_PRODUCTION = [
    "http://public.corp.test/hooks",  # HTTP is never enough for a public host
    "https://127.0.0.1/hooks",
    "http://127.0.0.1:8000/hooks",
    "https://localhost/hooks",
    "https://[::1]/hooks",
    "https://[::ffff:127.0.0.1]/hooks",
    "https://2130706433/hooks",  # 127.0.0.1 written as one number
    "https://mixed.corp.test/hooks",
]


@pytest.mark.parametrize("url", REFUSED_EVERYWHERE + REFUSED_IN_PRODUCTION)
def test_registration_refuses_internal_and_unsafe_targets(dns, settings, url):
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = False

    with pytest.raises(WebhookError):
        webhook_endpoint_create(url=url, enabled_events=[])

    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", REFUSED_EVERYWHERE)
def test_the_development_loopback_switch_opens_loopback_only(dns, settings, url):
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = True

    with pytest.raises(WebhookError):
        webhook_endpoint_create(url=url, enabled_events=[])

    assert not WebhookEndpoint.objects.exists()


def test_public_https_hosts_and_development_loopback_are_accepted(dns, settings):
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = False
    assert webhook_endpoint_create(url="https://public.corp.test/hooks", enabled_events=[]).pk

    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = True
    assert webhook_endpoint_create(url="http://127.0.0.1:8000/hooks", enabled_events=[]).pk
    assert webhook_endpoint_create(url="http://localhost:8000/hooks", enabled_events=[]).pk


def test_an_update_to_an_internal_url_is_refused(dns, settings):
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = False
    endpoint = webhook_endpoint_create(url="https://public.corp.test/hooks", enabled_events=[])

    with pytest.raises(WebhookError):
        webhook_endpoint_update(endpoint=endpoint, changes={"url": "https://169.254.169.254/latest/"})

    endpoint.refresh_from_db()
    assert endpoint.url == "https://public.corp.test/hooks"


def test_the_production_settings_refuse_loopback_even_when_asked(tmp_path):
    """The development switch cannot be turned on in production, whatever the environment says."""
    from cryptography.fernet import Fernet

    code = (
        "from billing.services.webhooks import webhook_url_check\n"
        "from django.conf import settings\n"
        "print('switch', settings.TARIF_WEBHOOK_ALLOW_LOOPBACK)\n"
        "try:\n"
        "    webhook_url_check(url='http://127.0.0.1:8000/hooks')\n"
        "    print('accepted')\n"
        "except Exception as error:\n"
        "    print('refused', type(error).__name__)\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="x7#kq-" + "a9Vb3Lm2Qz8Rt5Wy1Np4Hs6Jd0Gf7Ke3Cx9Bv2Mn5Zl8Pq1Ru4Tw7Yo0Ia3Sd6Fg",
        ALLOWED_HOSTS="billing.example.com",
        TARIF_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        TARIF_WEBHOOK_ALLOW_LOOPBACK="true",
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert "switch False" in result.stdout, result.stdout + result.stderr
    assert "refused WebhookTargetRefused" in result.stdout, result.stdout + result.stderr


# -- at send time --------------------------------------------------------------------------------


class Listener:
    """A bare TCP listener on loopback that only counts who connects to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    def connections(self) -> int:
        count = 0
        while True:
            try:
                conn, _address = self.sock.accept()
            except TimeoutError:
                return count
            conn.close()
            count += 1


class Server:
    """An HTTP server on loopback answering every POST with `status`, `headers` and `body`."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers["Content-Length"]))
                server.hits += 1
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def record_event():
    return event_record(
        type="invoice.finalized", object_type="invoice", object_id=1, customer_id=None, occurred_at=timezone.now()
    )


def test_dns_rebinding_to_loopback_is_refused_at_send_time(dns, settings):
    # Given an endpoint whose name resolved to a public address when it was registered
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = False
    settings.TARIF_WEBHOOK_TIMEOUT_SECONDS = 1
    listener = Listener()
    dns["rebind.corp.test"] = [PUBLIC_IP]
    webhook_endpoint_create(url=f"https://rebind.corp.test:{listener.port}/hooks", enabled_events=[])
    record_event()
    # When the name now answers with a loopback address
    dns["rebind.corp.test"] = ["127.0.0.1"]

    outcome = webhooks_dispatch()

    # Then nothing connects to the loopback address and the attempt says why
    assert outcome.delivered == 0 and outcome.failed == 1
    assert listener.connections() == 0
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and "refused" in delivery.last_error.lower()


def test_a_loopback_endpoint_is_refused_at_send_time_once_the_switch_is_off(settings):
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = True
    server = Server()
    try:
        webhook_endpoint_create(url=f"http://127.0.0.1:{server.port}/hooks", enabled_events=[])
        record_event()
        settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = False

        outcome = webhooks_dispatch()
    finally:
        server.stop()

    assert outcome.failed == 1 and server.hits == 0


def test_the_send_connects_to_the_address_it_checked(dns, settings, monkeypatch):
    """One lookup per attempt: the address checked is the address connected to (no second
    lookup that a rebinding name could answer differently)."""
    # Given a name that resolves to loopback (allowed here by the development switch)
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = True
    settings.TARIF_WEBHOOK_TIMEOUT_SECONDS = 1
    server = Server()
    dns["hooks.dev.test"] = ["127.0.0.1"]
    lookups: list[str] = []
    fake_getaddrinfo = socket.getaddrinfo

    def answer_once(host, port, *args, **kwargs):
        if host == "hooks.dev.test":
            lookups.append(host)
            if len(lookups) > 1:  # any later lookup would be sent elsewhere
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.9.9", port or 0))]
        return fake_getaddrinfo(host, port, *args, **kwargs)

    try:
        webhook_endpoint_create(url=f"http://hooks.dev.test:{server.port}/hooks", enabled_events=[])
        record_event()
        monkeypatch.setattr(socket, "getaddrinfo", answer_once)

        # When the delivery is sent
        outcome = webhooks_dispatch()
    finally:
        server.stop()

    # Then the name was looked up once and the request reached the checked address
    assert outcome.delivered == 1 and server.hits == 1
    assert lookups == ["hooks.dev.test"]


def test_a_redirect_is_not_followed(settings):
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = True
    target = Server()
    redirector = Server(status=302, headers={"Location": f"http://127.0.0.1:{target.port}/elsewhere"})
    try:
        webhook_endpoint_create(url=f"http://127.0.0.1:{redirector.port}/hooks", enabled_events=[])
        record_event()

        outcome = webhooks_dispatch()
    finally:
        target.stop()
        redirector.stop()

    assert outcome.failed == 1 and redirector.hits == 1 and target.hits == 0
    assert WebhookDelivery.objects.get().last_status_code == 302


def test_only_the_status_line_of_the_response_is_kept(settings):
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = True
    server = Server(status=200, body=b"internal-secret: db password hunter2")
    try:
        webhook_endpoint_create(url=f"http://127.0.0.1:{server.port}/hooks", enabled_events=[])
        record_event()

        assert webhooks_dispatch().delivered == 1
    finally:
        server.stop()

    attempt = WebhookAttempt.objects.get()
    assert "hunter2" not in str(attempt.__dict__)
    assert attempt.response_excerpt == "200 OK"


def test_the_api_answers_422_for_an_internal_target(dns, settings, staff_factory):
    from config.api.keys import api_key_create
    from tests.api.conftest import client_for

    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = False
    _key, raw = api_key_create(name="hooks", scope="read_write", mode="live", created_by=staff_factory())

    response = client_for(raw).post(
        "/api/v1/webhook_endpoints", {"url": "https://169.254.169.254/latest/meta-data/"}, format="json"
    )

    assert response.status_code == 422, response.content
    assert not WebhookEndpoint.objects.exists()


def test_the_console_refuses_an_internal_target_with_a_form_error(dns, settings, console):
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = False

    response = console.post(
        "/admin/billing/webhookendpoint/add/",
        {"url": "https://internal.corp.test/hooks", "description": "", "enabled_events": "[]", "active": "on"},
    )

    assert response.status_code == 200
    assert not WebhookEndpoint.objects.exists()


def _certificate_files(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `name` signed by it: (ca, cert, key)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def build(subject: str, key, issuer: str, issuer_key, *, ca: bool, san: str | None = None):
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("Tarif test CA", ca_key, "Tarif test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = build(name, server_key, "Tarif test CA", ca_key, ca=False, san=name)
    paths = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.mark.parametrize(("certificate_name", "delivered"), [("hooks.dev.test", True), ("other.dev.test", False)])
def test_https_to_the_pinned_address_still_verifies_the_certificate_for_the_name(
    dns, settings, monkeypatch, tmp_path, certificate_name, delivered
):
    import ssl

    import requests

    # Given an HTTPS receiver on loopback whose certificate names `certificate_name`
    settings.TARIF_WEBHOOK_ALLOW_LOOPBACK = True
    settings.TARIF_WEBHOOK_TIMEOUT_SECONDS = 2
    ca, cert, key = _certificate_files(tmp_path, certificate_name)
    server = Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    dns["hooks.dev.test"] = ["127.0.0.1"]

    class TrustingTestCa(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.verify = str(ca)

    monkeypatch.setattr(requests, "Session", TrustingTestCa)
    try:
        webhook_endpoint_create(url=f"https://hooks.dev.test:{server.port}/hooks", enabled_events=[])
        record_event()

        outcome = webhooks_dispatch()
    finally:
        server.stop()

    # Then the name's certificate is required even though the connection went to an address
    assert (outcome.delivered, server.hits) == ((1, 1) if delivered else (0, 0))
    if not delivered:
        assert "SSLError" in WebhookDelivery.objects.get().last_error
