"""A crash between the gateway's answer and Tarif's database update never charges twice."""

from __future__ import annotations

import pytest

from billing.models import Payment, SandboxCharge
from billing.services import payments
from billing.services.dunning import invoices_collect
from billing.services.payments import invoice_collect
from invoices.models import Invoice
from tests.billing.payments.conftest import VISA_OK

pytestmark = pytest.mark.django_db


class Crash(Exception):
    pass


def test_a_retry_after_a_crash_reuses_the_attempt_and_the_charge(subscribe, monkeypatch):
    _, invoice = subscribe(VISA_OK)

    def crash(**kwargs):
        raise Crash("worker killed after the gateway charged")

    with monkeypatch.context() as patch:
        patch.setattr(payments, "payment_record_outcome", crash)
        with pytest.raises(Crash):
            invoice_collect(invoice=invoice)

    # the gateway charged, Tarif did not record it
    invoice.refresh_from_db()
    attempt = Payment.objects.get(invoice=invoice)
    assert invoice.status == Invoice.Status.OPEN and attempt.status == Payment.Status.PENDING
    assert SandboxCharge.objects.get().status == "succeeded"

    # the retry (here: the billing run's collection task running again) finishes the job
    invoices_collect(invoice_ids=[invoice.pk])

    invoice.refresh_from_db()
    attempt.refresh_from_db()
    charge = SandboxCharge.objects.get()  # still exactly one charge at the gateway
    assert charge.idempotency_key == attempt.idempotency_key == f"invoice:{invoice.pk}:attempt:1"
    assert attempt.status == Payment.Status.SUCCEEDED and attempt.gateway_reference == charge.reference
    assert invoice.status == Invoice.Status.PAID and invoice.amount_paid == charge.amount == 3480


def test_collecting_a_paid_invoice_again_does_nothing(charged):
    _, invoice = charged(VISA_OK)

    assert invoice_collect(invoice=invoice) is None
    invoices_collect(invoice_ids=[invoice.pk])

    assert SandboxCharge.objects.count() == 1 == Payment.objects.count()
