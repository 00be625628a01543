"""Issue 14: the console's "email invoice" records, commits, then calls the mail server.

The email backend below notes whether a transaction was open when it was called: the send
must happen with none (no row lock held while SMTP answers), be recorded before it (a
queued notification with its hand-off row), and its outcome after it; a refused send stays
retryable by the sweeper and the console says so.
"""

from __future__ import annotations

import smtplib

import pytest
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection, transaction

from config.ops.models import Handoff
from customers.models import NotificationKind, NotificationLog
from customers.notifications.services import notification_deliver

pytestmark = pytest.mark.django_db(transaction=True)

CALLS: list[bool] = []  # connection.in_atomic_block at each call of the backend
REFUSE: list[bool] = []  # set to refuse the next sends (an SMTP outage)


class RecordingBackend(EmailBackend):
    def send_messages(self, messages):  # type: ignore[no-untyped-def]
        CALLS.append(connection.in_atomic_block)
        if REFUSE:
            raise smtplib.SMTPServerDisconnected("mail server went away")
        return super().send_messages(messages)


@pytest.fixture
def recording_backend(settings):
    settings.EMAIL_BACKEND = f"{__name__}.RecordingBackend"
    CALLS.clear()
    REFUSE.clear()
    yield CALLS
    REFUSE.clear()


def email_action(console, invoice):
    return console.post(
        "/admin/invoices/invoice/", {"action": "email_to_customer", "_selected_action": [invoice.pk]}, follow=True
    )


def test_the_console_email_is_sent_after_its_record_committed_with_no_transaction_open(
    console, mixed_invoice, recording_backend, mailoutbox
):
    # when staff email an issued invoice from the list
    response = email_action(console, mixed_invoice)

    # then the mail server was called once, outside any transaction, and the outcome recorded
    assert recording_backend == [False]
    [message] = mailoutbox
    assert message.attachments[-1][0] == f"{mixed_invoice.number}.pdf"
    log = NotificationLog.objects.get(kind=NotificationKind.INVOICE_SENT)
    assert (log.status, log.attempts, log.data["invoice"]) == (NotificationLog.Status.SENT, 1, mixed_invoice.pk)
    assert log.recipient == mixed_invoice.issued_snapshot["buyer"]["email"]
    assert Handoff.objects.get(kind=Handoff.Kind.NOTIFICATION, object_id=log.pk).done_at is not None
    assert "1 invoice emailed." in response.content.decode()


def test_an_smtp_failure_leaves_the_email_queued_and_the_sweeper_sends_it(
    console, mixed_invoice, recording_backend, mailoutbox
):
    # given the mail server refuses
    REFUSE.append(True)

    # when staff email the invoice
    response = email_action(console, mixed_invoice)

    # then the console says it is queued, the row is failed-but-retryable and its hand-off still pending
    assert "queued for another try" in response.content.decode()
    log = NotificationLog.objects.get(kind=NotificationKind.INVOICE_SENT)
    assert (log.status, log.attempts) == (NotificationLog.Status.FAILED, 1)
    assert "SMTPServerDisconnected" in log.error
    assert Handoff.objects.get(kind=Handoff.Kind.NOTIFICATION, object_id=log.pk).done_at is None
    assert mailoutbox == []

    # when the server is back and the sweeper's task runs the hand-off again
    REFUSE.clear()
    from customers.tasks import notification_deliver_task

    notification_deliver_task.apply(args=[log.pk])

    # then it is sent once, outside any transaction
    log.refresh_from_db()
    assert log.status == NotificationLog.Status.SENT and log.attempts == 2
    assert len(mailoutbox) == 1
    assert recording_backend == [False, False]
    assert Handoff.objects.get(kind=Handoff.Kind.NOTIFICATION, object_id=log.pk).done_at is not None


def test_a_second_delivery_of_a_sent_email_sends_nothing(console, mixed_invoice, recording_backend, mailoutbox):
    email_action(console, mixed_invoice)
    log = NotificationLog.objects.get(kind=NotificationKind.INVOICE_SENT)

    notification_deliver(log_id=log.pk)  # the sweeper racing the console's fast path

    assert len(mailoutbox) == 1 and recording_backend == [False]


def test_negative_control_the_backend_sees_a_send_made_inside_a_transaction(recording_backend, mailoutbox):
    from django.core.mail import send_mail

    with transaction.atomic():
        send_mail("inside", "body", "from@example.com", ["to@example.com"])

    assert recording_backend == [True], "the check must catch an email sent while a transaction is open"


def test_every_notification_is_sent_after_its_claim_committed(mixed_invoice, recording_backend, mailoutbox):
    from customers.notifications.services import notification_queue

    # when the "new invoice" notification is queued (delivered after the commit, tasks in-process)
    log = notification_queue(
        customer=mixed_invoice.customer,
        kind=NotificationKind.INVOICE_FINALIZED,
        dedupe_key=f"invoice:{mixed_invoice.pk}",
        data={"invoice": mixed_invoice.pk},
    )

    # then SMTP was called with no transaction (so no row lock) open
    log.refresh_from_db()
    assert log.status == NotificationLog.Status.SENT
    assert recording_backend == [False]
