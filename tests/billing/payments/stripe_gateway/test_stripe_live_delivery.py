"""True end to end: localstripe itself signs and delivers its webhooks to a running Tarif."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import time_machine

from billing.models import GatewayEvent, Payment
from invoices.models import Invoice
from tests.billing.payments.stripe_gateway.conftest import REQUIRES_ACTION, WEBHOOK_SECRET
from tests.billing.payments.stripe_gateway.test_stripe_webhooks import URL, authenticate


@pytest.fixture
def delivering_to(localstripe):
    """Register `url` at localstripe's webhook config; stop deliveries afterwards."""
    registered = []

    def register(url: str) -> None:
        localstripe.post("/_config/webhooks/tarif", {"url": url, "secret": WEBHOOK_SECRET})
        registered.append(url)

    yield register
    if registered:  # the live server goes away: deliver nothing more to it
        localstripe.post(
            "/_config/webhooks/tarif", {"url": registered[0], "secret": WEBHOOK_SECRET, "events[]": "tarif.none"}
        )


@pytest.mark.slow
def test_localstripe_delivers_a_signed_webhook_that_settles_a_3ds_payment(
    transactional_db, live_server, stripe_on, localstripe, delivering_to, charged, now
):
    delivering_to(live_server.url + URL)
    _, invoice = charged(REQUIRES_ACTION)
    payment = Payment.objects.get(invoice=invoice)
    assert payment.status == Payment.Status.REQUIRES_ACTION
    # localstripe signs with the real clock: Tarif's must agree with it, as in production
    # (a signature dated months after Tarif's frozen "now" is refused as from the future).
    now.move_to(datetime.fromtimestamp(time_machine.escape_hatch.time.time(), UTC))

    authenticate(localstripe, payment.gateway_reference)  # the customer completes 3-D Secure

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        invoice.refresh_from_db()
        if invoice.status == Invoice.Status.PAID:
            break
        time.sleep(0.2)
    assert invoice.status == Invoice.Status.PAID
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    delivered = GatewayEvent.objects.filter(gateway="stripe", type="charge.succeeded").get()
    assert delivered.processed_at is not None and delivered.event_id.startswith("evt_")
