"""A receipt on every successful payment (issue 17, item 6): card, SEPA Direct Debit, bank
transfer reconciled from a statement, manual; once per payment (the notification log's
unique dedupe key), never twice for a replayed webhook; the paid invoice attached."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from billing.models import BankStatement, BankStatementLine, Payment
from billing.payments.sandbox import SIGNATURE_HEADER, SandboxGateway, sign_webhook
from billing.services.dunning import invoices_collect
from billing.services.payments import payment_method_attach, payment_record_manual, payment_webhook_handle
from billing.services.reconciliation import bank_line_match_invoice
from billing.services.subscriptions import ItemSpec, subscription_create
from customers.models import NotificationLog
from tests.billing.payments.conftest import REQUIRES_AUTH, T0

pytestmark = pytest.mark.django_db


def receipts(messages) -> list:
    return [m for m in messages if m.subject.startswith("Receipt")]


def attached_text(message) -> str:
    [(name, pdf, mimetype)] = [a for a in message.attachments if a[2] == "application/pdf"]
    assert mimetype == "application/pdf" and name.endswith(".pdf")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_a_card_payment_sends_one_receipt_with_the_paid_invoice(clocked_customer, make_price, consume):
    customer = clocked_customer(preferred_language="en")
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoices_collect(invoice_ids=[subscription.invoices.get().pk])

    sent = receipts(consume())

    assert len(sent) == 1 and "€34.80" in sent[0].subject
    text = attached_text(sent[0])
    assert "PAID" in text.upper() and "card ending 4242" in text and "Amount due" not in text
    assert receipts(consume()) == []  # the consumer again: nothing more


def test_a_sepa_debit_sends_a_receipt(clocked_customer, make_price, consume):
    customer = clocked_customer(None, preferred_language="en")
    payment_method_attach(customer=customer, source={"iban": "AT611904300234573201"})
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoices_collect(invoice_ids=[subscription.invoices.get().pk])

    sent = receipts(consume())

    assert len(sent) == 1
    assert "SEPA Direct Debit" in attached_text(sent[0])


def test_a_manual_payment_sends_a_receipt_per_payment(clocked_customer, make_price, consume):
    customer = clocked_customer(None, preferred_language="en")
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(make_price(2900))], collection_method="send_invoice", days_until_due=30
    )
    invoice = subscription.invoices.get()

    payment_record_manual(invoice=invoice, amount=1000, method="cheque", reference="CHQ 1")
    first = receipts(consume())
    payment_record_manual(invoice=invoice, amount=2480, method="cheque", reference="CHQ 2")
    second = receipts(consume())

    assert len(first) == 1 and len(second) == 1
    assert "PARTLY PAID" in attached_text(first[0]).upper()  # the invoice as it stood then
    assert "Amount due" not in attached_text(second[0])
    assert NotificationLog.objects.filter(kind="payment_receipt").count() == 2


def test_a_reconciled_bank_transfer_sends_one_receipt_even_when_matched_again(clocked_customer, make_price, consume):
    customer = clocked_customer(None, preferred_language="en")
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(make_price(2900))], collection_method="send_invoice", days_until_due=30
    )
    invoice = subscription.invoices.get()
    statement = BankStatement.objects.create(
        account="IBAN-0189", statement_id="STMT-R", source_format="camt053", file_checksum="1" * 64, imported_at=T0
    )
    line = BankStatementLine.objects.create(
        statement=statement, sequence=1, fingerprint="c" * 64, booking_date=T0.date(), amount=3480, currency="EUR",
        remittance_info=f"Invoice {invoice.number}",
    )  # fmt: skip

    bank_line_match_invoice(line=line, invoice=invoice)
    sent = receipts(consume())

    assert len(sent) == 1 and "bank transfer" in attached_text(sent[0])
    assert Payment.objects.get(invoice=invoice).method == "bank_transfer"
    assert receipts(consume()) == []


def test_a_replayed_webhook_sends_no_second_receipt(clocked_customer, make_price, consume):
    # given a card payment that waited for 3-D Secure, confirmed by a gateway webhook
    customer = clocked_customer(REQUIRES_AUTH, preferred_language="en")
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoice = subscription.invoices.get()
    invoices_collect(invoice_ids=[invoice.pk])
    payment = Payment.objects.get(invoice=invoice)
    payload = SandboxGateway().complete_authentication(charge_reference=payment.gateway_reference)

    payment_webhook_handle(gateway_name="sandbox", payload=payload, headers={SIGNATURE_HEADER: sign_webhook(payload)})
    first = receipts(consume())
    # when the gateway delivers it again (same event, re-signed)
    payment_webhook_handle(gateway_name="sandbox", payload=payload, headers={SIGNATURE_HEADER: sign_webhook(payload)})
    second = receipts(consume())

    assert len(first) == 1 and second == []
    assert NotificationLog.objects.filter(kind="payment_receipt", customer=customer).count() == 1
