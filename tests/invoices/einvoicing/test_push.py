"""Statuses pushed by the simulator to Tarif's signed webhook (a live server), delivered twice."""

from __future__ import annotations

import time

import pytest

from invoices.einvoicing.models import LifecycleStatus, Transmission
from tests.invoices.helpers import issue

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_pushed_statuses_are_stored_once_and_a_refusal_is_flagged(
    postgres_only, live_server, sim, account, b2b_customer, fr_vat
):
    # given the simulator pushes every status twice to the account's webhook, and the buyer refuses
    sim.control("webhook", url=f"{live_server.url}/einvoicing/webhook/{account.pk}/", secret="whsec-test")
    sim.control("rules", tracking_id="*", outcome="refuse", reason_text="Not ordered", duplicate_statuses=True)

    # when an invoice is finalized (the after-commit fast path submits it at once)
    invoice = issue(b2b_customer, [4200])

    # then the four statuses arrive (eight deliveries) and are stored once each
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(sim.state()["deliveries"]) < 8:
        time.sleep(0.2)
    deliveries = sim.state()["deliveries"]
    assert len(deliveries) == 8 and {delivery["result"] for delivery in deliveries} == {200}
    transmission = Transmission.objects.get(invoice=invoice)
    assert transmission.state == "submitted"
    assert list(LifecycleStatus.objects.filter(transmission=transmission).values_list("code", flat=True)) == [
        "200",
        "202",
        "203",
        "210",
    ]
    assert transmission.needs_attention and "Not ordered" in transmission.attention_reason


def test_a_push_with_the_wrong_secret_is_refused(postgres_only, live_server, sim, account, b2b_customer, fr_vat):
    sim.control("webhook", url=f"{live_server.url}/einvoicing/webhook/{account.pk}/", secret="not-the-secret")
    invoice = issue(b2b_customer, [4200])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(sim.state()["deliveries"]) < 3:
        time.sleep(0.2)
    assert {delivery["result"] for delivery in sim.state()["deliveries"]} == {400}
    assert not LifecycleStatus.objects.filter(transmission__invoice=invoice).exists()
