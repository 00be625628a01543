"""End to end: events -> consumer -> Celery task -> Django's SMTP backend -> a real SMTP server."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller

from billing.services.dunning import invoices_collect
from billing.services.subscriptions import ItemSpec, subscription_create
from customers.models import NotificationLog
from tests.smtp import Inbox, free_port, smtp_inbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp_server(settings):
    yield from smtp_inbox(settings)


def test_invoice_and_receipt_reach_a_real_smtp_server(smtp_server, clocked_customer, make_price, consume):
    customer = clocked_customer(preferred_language="en")
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoice = subscription.invoices.get()
    invoices_collect(invoice_ids=[invoice.pk])

    consume()

    subjects = sorted(str(message["Subject"]) for message in smtp_server.messages)
    assert len(subjects) == 2, subjects
    invoice_mail = next(m for m in smtp_server.messages if invoice.number in str(m["Subject"]))
    receipt = next(m for m in smtp_server.messages if "Receipt" in str(m["Subject"]))
    assert invoice_mail["To"] == "anna@client.example"
    pdf = next(part for part in invoice_mail.iter_attachments() if part.get_content_type() == "application/pdf")
    assert pdf.get_content().startswith(b"%PDF")
    html = receipt.get_body(preferencelist=("html",)).get_content()
    assert "#2851a3" in html  # the brand's primary colour
    assert receipt.get_body(preferencelist=("plain",)).get_content().startswith("Hello ")
    assert set(NotificationLog.objects.values_list("status", flat=True)) == {"sent"}


def test_an_smtp_outage_is_logged_as_failed_then_the_retry_delivers(settings, clocked_customer, make_price, consume):
    from customers.notifications.services import notification_deliver

    port = free_port()  # nothing listens there yet
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    customer = clocked_customer(preferred_language="en")
    subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])

    consume()

    log = NotificationLog.objects.get(kind="invoice_finalized")
    assert log.status == NotificationLog.Status.FAILED and "Connection" in log.error
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        notification_deliver(log_id=log.pk)  # what the task's retry runs
        notification_deliver(log_id=log.pk)  # and a duplicate retry sends nothing more
    finally:
        controller.stop()
    log.refresh_from_db()
    assert log.status == NotificationLog.Status.SENT and len(inbox.messages) == 1
