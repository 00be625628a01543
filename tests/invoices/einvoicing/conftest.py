"""The PA simulator as a subprocess on a free loopback port, and a French B2B customer's world."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from invoices.einvoicing.models import PlatformAccount

ROOT = Path(__file__).resolve().parents[3]
SIREN = "732829320"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sim:
    def __init__(self, url: str) -> None:
        self.url = url

    def control(self, action: str, **body: object) -> dict:
        response = requests.post(f"{self.url}/_sim/{action}", json=body, timeout=5)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict:
        return requests.get(f"{self.url}/_sim/state", timeout=5).json()


@pytest.fixture(scope="session")
def simulator_process():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "invoices.einvoicing.simulator", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(f"{url}/_sim/state", timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the PA simulator did not start") from None
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def sim(simulator_process):
    simulator = Sim(simulator_process)
    simulator.control("reset")
    simulator.control("directory", siren=SIREN, routing_address=f"0225:{SIREN}", platform="Simulated PA")
    return simulator


@pytest.fixture
def fr_vat(tax_rate_factory):
    return tax_rate_factory(country="FR", percentage=Decimal("20"))


@pytest.fixture
def brand(brand_factory):
    return brand_factory(slug="einvoicing-brand", invoice_number_format="FE-{year}-{seq:06d}")


@pytest.fixture
def account(brand, sim):
    return PlatformAccount.objects.create(
        brand=brand,
        livemode=True,
        name="Simulated PA",
        kind=PlatformAccount.Kind.SIMULATOR,
        base_url=sim.url,
        token_url=f"{sim.url}/oauth/token",
        client_id="tarif",
        client_secret="s3cret",
        webhook_secret="whsec-test",
    )


@pytest.fixture
def b2b_customer(customer_factory, brand):
    return customer_factory(brand=brand, siren=SIREN, is_business=True, country="FR")
