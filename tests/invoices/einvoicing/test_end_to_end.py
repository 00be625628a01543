"""End to end with the PA simulator (a subprocess): finalize → one submission → statuses in."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from config.events.models import DomainEvent
from invoices.einvoicing.models import DirectoryEntry, LifecycleStatus, PlatformAccount, Transmission
from invoices.einvoicing.selectors import transmissions_needing_attention
from invoices.einvoicing.services import account_poll_statuses, transmission_retry, transmissions_submit_due
from invoices.services.credit_notes import CreditLineInput, credit_note_create
from tests.invoices.helpers import ISSUED_AT, issue

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_a_french_b2b_invoice_is_submitted_once_and_its_statuses_are_pulled(sim, account, b2b_customer, fr_vat):
    # given a finalized invoice for a French business with a SIREN
    invoice = issue(b2b_customer, [10000])
    transmission = Transmission.objects.get(invoice=invoice)
    assert transmission.state == "queued"

    # when the sweeper runs twice and the statuses are polled
    assert transmissions_submit_due() == 1
    assert transmissions_submit_due() == 0
    account_poll_statuses(account=account)

    # then the simulator received exactly one flow: the Factur-X PDF of the invoice
    state = sim.state()
    assert state["submissions"] == {transmission.tracking_id: 1}
    [flow] = state["flows"]
    assert flow["syntax"] == "factur-x" and flow["name"] == f"{invoice.number}.pdf"
    transmission.refresh_from_db()
    assert (transmission.state, transmission.flow_id) == ("submitted", flow["flowId"])
    assert transmission.routing_address == "0225:732829320"
    assert list(transmission.statuses.values_list("code", flat=True)) == ["200", "202", "203"]
    assert transmission.last_status_code == "203"
    assert DomainEvent.objects.filter(type="einvoice.status_changed", object_id=str(invoice.pk)).count() == 3
    # and the directory answer is cached
    assert DirectoryEntry.objects.get(siren="732829320").found is True


def test_a_rejected_invoice_is_flagged_for_finance_with_the_reason(sim, account, b2b_customer, fr_vat):
    invoice = issue(b2b_customer, [5000])
    transmission = Transmission.objects.get(invoice=invoice)
    sim.control(
        "rules",
        tracking_id=transmission.tracking_id,
        outcome="reject",
        reason_code="REJ_SEMAN",
        reason_text="Buyer SIREN unknown",
    )

    transmissions_submit_due()
    account_poll_statuses(account=account)

    transmission.refresh_from_db()
    assert transmission.last_status_code == "213"
    assert transmission.needs_attention is True
    assert "Buyer SIREN unknown" in transmission.attention_reason
    assert list(transmissions_needing_attention(livemode=True)) == [transmission]
    status = transmission.statuses.get(code="213")
    assert (status.origin, status.reason_code) == ("platform", "REJ_SEMAN")


def test_a_refused_invoice_is_flagged_and_a_credit_note_flows_after_it(sim, account, b2b_customer, fr_vat):
    invoice = issue(b2b_customer, [8000])
    transmission = Transmission.objects.get(invoice=invoice)
    sim.control("rules", tracking_id=transmission.tracking_id, outcome="refuse", reason_code="DOUBLON")
    transmissions_submit_due()
    account_poll_statuses(account=account)
    transmission.refresh_from_db()
    assert (transmission.last_status_code, transmission.needs_attention) == ("210", True)

    # when finance cancels it with a credit note
    line = invoice.lines.get()
    note = credit_note_create(
        invoice=invoice,
        lines=[CreditLineInput(invoice_line_id=line.pk, amount=8000)],
        reduce_amount_due=invoice.amount_due,
        reason="duplicate",
        at=ISSUED_AT,
    )
    transmissions_submit_due()

    # then the credit note is its own flow, of type credit_note
    note_transmission = Transmission.objects.get(credit_note=note)
    assert note_transmission.kind == "credit_note" and note_transmission.state == "submitted"
    flows = {flow["trackingId"]: flow for flow in sim.state()["flows"]}
    assert flows[note_transmission.tracking_id]["flowType"] == "credit_note"
    assert len(flows) == 2


def test_an_outage_is_retried_with_backoff_and_submits_once(sim, account, b2b_customer, fr_vat, settings):
    settings.TARIF_EINVOICING_RETRY_BASE_SECONDS = 0
    invoice = issue(b2b_customer, [1000])
    transmission = Transmission.objects.get(invoice=invoice)
    # the platform fails twice: a 503, then a dropped connection
    sim.control("outage", count=1, mode="503")

    transmissions_submit_due()
    transmission.refresh_from_db()
    assert (transmission.state, transmission.attempts) == ("queued", 1)
    assert "503" in transmission.last_error

    sim.control("outage", count=1, mode="drop")
    transmissions_submit_due()
    transmission.refresh_from_db()
    assert (transmission.state, transmission.attempts) == ("queued", 2)

    transmissions_submit_due()
    transmission.refresh_from_db()
    assert (transmission.state, transmission.attempts) == ("submitted", 3)
    assert sim.state()["submissions"] == {transmission.tracking_id: 1}


def test_the_backoff_waits_before_the_next_attempt(sim, account, b2b_customer, fr_vat, settings):
    settings.TARIF_EINVOICING_RETRY_BASE_SECONDS = 3600
    transmission = Transmission.objects.get(invoice=issue(b2b_customer, [1000]))
    sim.control("outage", count=5, mode="503")
    transmissions_submit_due()
    transmissions_submit_due()  # not due yet: no second attempt
    transmission.refresh_from_db()
    assert transmission.attempts == 1 and transmission.next_attempt_at > datetime.now(UTC)


def test_a_lost_acknowledgement_is_deduplicated_by_the_platform(sim, account, b2b_customer, fr_vat, settings):
    settings.TARIF_EINVOICING_RETRY_BASE_SECONDS = 0
    transmission = Transmission.objects.get(invoice=issue(b2b_customer, [1000]))
    # the PA records the flow but its acknowledgement is lost (503 after recording)
    sim.control("rules", tracking_id=transmission.tracking_id, lose_ack=1)

    transmissions_submit_due()
    transmission.refresh_from_db()
    assert transmission.state == "queued"
    transmissions_submit_due()

    transmission.refresh_from_db()
    state = sim.state()
    assert transmission.state == "submitted"
    assert len(state["flows"]) == 1 and transmission.flow_id == state["flows"][0]["flowId"]
    assert state["submissions"][transmission.tracking_id] == 2  # two requests, one flow


def test_duplicate_status_deliveries_are_stored_once(sim, account, b2b_customer, fr_vat):
    transmission = Transmission.objects.get(invoice=issue(b2b_customer, [1000]))
    sim.control("rules", tracking_id=transmission.tracking_id, duplicate_statuses=True, duplicate_ack=True)
    transmissions_submit_due()
    account_poll_statuses(account=account)
    # polling again from the start replays everything: still stored once
    account.poll_cursor = ""
    account.save()
    account_poll_statuses(account=account)

    transmission.refresh_from_db()
    assert transmission.state == "submitted"
    assert list(transmission.statuses.values_list("code", flat=True)) == ["200", "202", "203"]
    assert DomainEvent.objects.filter(type="einvoice.status_changed").count() == 3


def test_b2c_and_foreign_customers_are_not_transmitted(sim, account, customer_factory, brand, fr_vat, tax_rate_factory):
    tax_rate_factory(country="DE", name="MwSt", percentage=Decimal("19"))
    consumer = customer_factory(brand=brand, is_business=False, siren="")
    german = customer_factory(brand=brand, country="DE", siren="")
    issue(consumer, [1000])
    issue(german, [1000])
    assert Transmission.objects.count() == 0
    assert transmissions_submit_due() == 0
    assert sim.state()["flows"] == []


def test_a_brand_without_a_platform_account_does_not_transmit(sim, b2b_customer, fr_vat):
    issue(b2b_customer, [1000])
    assert Transmission.objects.count() == 0


def test_no_directory_address_fails_with_a_warning_and_retry_needs_staff(sim, account, customer_factory, brand, fr_vat):
    unknown = customer_factory(brand=brand, siren="443061841")
    transmission = Transmission.objects.get(invoice=issue(unknown, [1000]))

    transmissions_submit_due()

    transmission.refresh_from_db()
    assert (transmission.state, transmission.needs_attention) == ("failed", True)
    assert "443061841" in transmission.attention_reason
    assert sim.state()["flows"] == []
    # once the customer is registered (and the cache refreshed), "retry now" submits it
    sim.control("directory", siren="443061841", routing_address="0225:443061841")
    transmission_retry(transmission=transmission)
    transmissions_submit_due()
    transmission.refresh_from_db()
    assert (transmission.state, transmission.needs_attention) == ("submitted", False)


def test_a_rejected_submission_fails_without_retry(sim, account, b2b_customer, fr_vat, monkeypatch):
    from invoices.einvoicing import services
    from invoices.einvoicing.adapters import OutboundFlow

    transmission = Transmission.objects.get(invoice=issue(b2b_customer, [1000]))
    monkeypatch.setattr(
        services,
        "transmission_payload",
        lambda t, routing_id="": OutboundFlow(
            tracking_id=t.tracking_id, syntax="xml", filename="x", content=b"x", flow_type="invoice"
        ),  # type: ignore[arg-type]
    )
    transmissions_submit_due()
    transmission.refresh_from_db()
    assert (transmission.state, transmission.needs_attention) == ("failed", True)
    assert "BAD_SYNTAX" in transmission.last_error
    assert transmissions_submit_due() == 0 and transmission.attempts == 1


def _signed(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def test_the_status_webhook_checks_its_signature_and_is_idempotent(client, sim, account, b2b_customer, fr_vat):
    transmission = Transmission.objects.get(invoice=issue(b2b_customer, [1000]))
    transmissions_submit_due()
    transmission.refresh_from_db()
    body = json.dumps(
        {
            "status": {
                "flowId": transmission.flow_id,
                "trackingId": transmission.tracking_id,
                "code": "205",
                "occurredAt": "2026-03-12T10:00:00+00:00",
                "origin": "buyer",
            }
        }
    ).encode()
    url = f"/einvoicing/webhook/{account.pk}/"

    bad = client.post(url, body, content_type="application/json", HTTP_X_PA_SIGNATURE=_signed("wrong", body))
    old = client.post(
        url, body, content_type="application/json", HTTP_X_PA_SIGNATURE=_signed("whsec-test", body, 1_600_000_000)
    )
    missing = client.post(url, body, content_type="application/json")
    assert (bad.status_code, old.status_code, missing.status_code) == (400, 400, 400)
    assert bad["Content-Type"] == "application/problem+json"
    assert bad.json()["code"] == "einvoicing_bad_signature"
    assert not LifecycleStatus.objects.filter(code="205").exists()

    first = client.post(url, body, content_type="application/json", HTTP_X_PA_SIGNATURE=_signed("whsec-test", body))
    again = client.post(url, body, content_type="application/json", HTTP_X_PA_SIGNATURE=_signed("whsec-test", body))
    assert (first.status_code, first.json()["new"], again.status_code, again.json()["new"]) == (200, 1, 200, 0)
    assert LifecycleStatus.objects.filter(code="205", origin="buyer").count() == 1

    garbage = b'{"status": {"code": "999"}}'
    response = client.post(
        url, garbage, content_type="application/json", HTTP_X_PA_SIGNATURE=_signed("whsec-test", garbage)
    )
    assert response.status_code == 400
    assert client.post("/einvoicing/webhook/999999/", body, content_type="application/json").status_code == 404


def test_the_directory_answer_is_cached_until_it_expires(sim, account, b2b_customer, fr_vat, settings):
    settings.TARIF_EINVOICING_DIRECTORY_TTL_DAYS = 7
    issue(b2b_customer, [1000])
    transmissions_submit_due()
    # the customer leaves the directory: within the cache's lifetime the cached address is used
    sim.control("reset")
    second = Transmission.objects.get(invoice=issue(b2b_customer, [2000]))
    transmissions_submit_due()
    second.refresh_from_db()
    assert second.state == "submitted"
    # once expired, the directory is asked again: not found, so the next one is held with a warning
    DirectoryEntry.objects.update(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    third = Transmission.objects.get(invoice=issue(b2b_customer, [3000]))
    transmissions_submit_due()
    third.refresh_from_db()
    assert (third.state, third.needs_attention) == ("failed", True)
    assert DirectoryEntry.objects.get(siren="732829320").found is False


def test_a_status_for_another_accounts_document_is_ignored(client, sim, account, b2b_customer, brand, fr_vat):
    # given a test-mode account of the same brand, and a live document
    other = PlatformAccount.objects.create(
        brand=brand, livemode=False, name="Test PA", base_url=sim.url, webhook_secret="other-secret"
    )
    transmission = Transmission.objects.get(invoice=issue(b2b_customer, [1000]))
    body = json.dumps(
        {"status": {"trackingId": transmission.tracking_id, "code": "210", "occurredAt": "2026-03-12T10:00:00+00:00"}}
    ).encode()

    # when the test-mode account's webhook reports a status for the live document
    response = client.post(
        f"/einvoicing/webhook/{other.pk}/",
        body,
        content_type="application/json",
        HTTP_X_PA_SIGNATURE=_signed("other-secret", body),
    )

    # then nothing is recorded on the live document
    assert (response.status_code, response.json()["new"]) == (200, 0)
    assert not transmission.statuses.exists()


def test_a_payment_sends_collected_212_once_with_the_amount_collected(sim, account, b2b_customer, fr_vat):
    """Services with VAT due on receipt: each payment records "212 Encaissée" (amount collected
    since the last one) in its transaction; the sweeper sends it to the platform once."""
    from billing.services.payments import payment_record_manual
    from invoices.einvoicing.services import collected_statuses_send

    invoice = issue(b2b_customer, [10000])  # 120.00 with VAT
    transmission = Transmission.objects.get(invoice=invoice)
    assert collected_statuses_send() == 0  # nothing to send before a payment
    payment_record_manual(invoice=invoice, amount=5000, method="bank_transfer", at=datetime(2026, 3, 10, tzinfo=UTC))
    # recorded before the document reached the platform: kept until it has a flow id
    assert collected_statuses_send() == 0
    transmissions_submit_due()
    payment_record_manual(invoice=invoice, amount=7000, method="bank_transfer", at=datetime(2026, 3, 20, tzinfo=UTC))
    collected = transmission.statuses.filter(code="212", origin="issuer").order_by("occurred_at")
    assert [(s.amount, s.currency) for s in collected] == [(5000, "EUR"), (7000, "EUR")]
    assert collected_statuses_send() == 2
    assert collected_statuses_send() == 0  # sent once
    sent = sim.state()["issuer_statuses"]
    assert [(s["code"], s["amount"]) for s in sent] == [("212", 5000), ("212", 7000)]


def test_vat_on_debits_sends_no_collected_status(sim, account, b2b_customer, fr_vat):
    from billing.services.payments import payment_record_manual

    brand = account.brand
    brand.vat_on_debits = True
    brand.save()
    invoice = issue(b2b_customer, [10000])
    payment_record_manual(invoice=invoice, amount=12000, method="bank_transfer", at=datetime(2026, 3, 10, tzinfo=UTC))
    assert not LifecycleStatus.objects.filter(code="212").exists()


def test_transmitted_documents_and_their_statuses_are_archived_in_the_hash_chain(sim, account, b2b_customer, fr_vat):
    """Every flow as the platform received it and every status, in the append-only archive, and
    the chain verifies (docs/archive.md)."""
    from django.core.management import call_command

    from invoices.archive.models import ArchiveRecord

    invoice = issue(b2b_customer, [10000])
    transmission = Transmission.objects.get(invoice=invoice)
    transmissions_submit_due()
    account_poll_statuses(account=account)
    account_poll_statuses(account=account)  # nothing new: nothing archived twice
    transmission.refresh_from_db()

    document = ArchiveRecord.objects.get(kind="document", reference=transmission.tracking_id)
    assert document.metadata["number"] == invoice.number and document.metadata["flow_id"] == transmission.flow_id
    statuses = ArchiveRecord.objects.filter(kind="status", reference__startswith=f"{transmission.tracking_id}:")
    assert statuses.count() == transmission.statuses.count() == 3
    call_command("verify_archive", "--no-progress")  # raises SystemExit on a broken chain


def test_a_batch_sent_over_several_threads_records_each_outcome_once(sim, account, b2b_customer, fr_vat, settings):
    # given six queued invoices, the buyer's directory answer cached, the sweeper sending a
    # batch's flows three at a time, and the platform failing the first flow it receives
    from invoices.einvoicing.services import directory_lookup

    settings.TARIF_EINVOICING_SUBMIT_CONCURRENCY = 3
    settings.TARIF_EINVOICING_RETRY_BASE_SECONDS = 3600
    invoices = [issue(b2b_customer, [1000 + n]) for n in range(6)]
    rows = {invoice.pk: Transmission.objects.get(invoice=invoice) for invoice in invoices}
    directory_lookup(account=account, siren=b2b_customer.siren)
    sim.control("outage", count=1, mode="503")

    # when the sweeper runs once
    submitted = transmissions_submit_due()

    # then five went through once each, one waits for its retry, and the PA saw six calls
    states = sorted(
        Transmission.objects.filter(pk__in=[row.pk for row in rows.values()]).values_list("state", flat=True)
    )
    assert (submitted, states) == (5, ["queued", "submitted", "submitted", "submitted", "submitted", "submitted"])
    received = sim.state()["submissions"]
    assert sorted(received.values()) == [1] * 5
    waiting = Transmission.objects.get(pk__in=[row.pk for row in rows.values()], state="queued")
    assert waiting.tracking_id not in received and "503" in waiting.last_error
    flows = {row.flow_id for row in Transmission.objects.filter(state="submitted", account=account)}
    assert len(flows) == 5 and "" not in flows
