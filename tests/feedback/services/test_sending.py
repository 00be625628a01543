"""Survey emails go out with no transaction open (so no row lock is held while the mail
server answers), and a mail server failure leaves the invitation to be retried, not lost.

The email backend below refuses to be called inside an atomic block; these tests run with
real transactions (`transaction=True`), since a plain django_db test wraps everything in one.
"""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection, transaction

from feedback.models import Invitation, Question, Trigger
from feedback.services import feedback_invitations_send_due, invitation_answer, survey_invite
from feedback.services.emails import invitation_email_send
from feedback.services.invitations import MAX_SEND_ATTEMPTS, SEND_LEASE
from tests.feedback.conftest import T0, add_question, link_token, questions

pytestmark = pytest.mark.django_db(transaction=True)

CALLS: list[bool] = []  # connection.in_atomic_block at each send
FAILURES: list[Exception] = []  # what the next sends raise (one each)


class OutsideTransactionsBackend(EmailBackend):
    """The test outbox, which records whether a transaction was open when it was called."""

    def send_messages(self, messages):
        CALLS.append(connection.in_atomic_block)
        assert not connection.in_atomic_block, "an email was sent inside a database transaction"
        if FAILURES:
            raise FAILURES.pop(0)
        return super().send_messages(messages)


@pytest.fixture(autouse=True)
def guarded_backend(settings):
    settings.EMAIL_BACKEND = f"{__name__}.OutsideTransactionsBackend"
    CALLS.clear()
    FAILURES.clear()
    mail.outbox = []
    yield
    FAILURES.clear()


@pytest.fixture
def due_invitation(make_customer, make_survey, now):
    customer = make_customer(preferred_language="en")
    survey = make_survey(Trigger.MANUAL)
    add_question(survey, Question.Kind.NPS, "Recommend us?")
    return survey_invite(survey=survey, customer=customer, key="sending", at=T0)


def test_the_invitation_email_is_sent_with_no_transaction_open(due_invitation):
    result = feedback_invitations_send_due()

    assert result.sent == 1
    assert CALLS == [False] and len(mail.outbox) == 1
    due_invitation.refresh_from_db()
    assert due_invitation.status == Invitation.Status.SENT and due_invitation.send_attempts == 1
    assert due_invitation.sent_at == T0


def test_negative_control_the_backend_catches_a_send_inside_a_transaction(due_invitation):
    """The pre-issue-14 path sent the email inside the transaction holding the locks."""
    invitation = Invitation.objects.select_related("survey").get(pk=due_invitation.pk)
    invitation.email = invitation.customer.email

    with pytest.raises(AssertionError, match="inside a database transaction"):
        with transaction.atomic():
            invitation_email_send(invitation=invitation, customer=invitation.customer, url="https://x.test/s/t/")

    assert CALLS == [True] and not mail.outbox


def test_a_mail_server_failure_leaves_the_invitation_to_retry(due_invitation, now):
    FAILURES.append(smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))

    first = feedback_invitations_send_due()

    assert (first.sent, first.failed) == (0, 1) and not mail.outbox
    due_invitation.refresh_from_db()
    assert due_invitation.status == Invitation.Status.SENDING  # recorded, not lost
    assert "SMTPServerDisconnected" in due_invitation.send_error
    assert due_invitation.next_attempt_at > T0
    assert feedback_invitations_send_due().failed == 0 and not mail.outbox  # not before its next try

    now.move_to(due_invitation.next_attempt_at)
    second = feedback_invitations_send_due()

    assert second.sent == 1 and len(mail.outbox) == 1
    due_invitation.refresh_from_db()
    assert due_invitation.status == Invitation.Status.SENT and due_invitation.send_error == ""
    assert due_invitation.send_attempts == 2
    assert CALLS == [False, False]
    # The link in the email that went out works.
    nps = questions(due_invitation.survey)[Question.Kind.NPS]
    assert invitation_answer(token=link_token(mail.outbox[-1]), answers={nps.pk: 9}).pk


def test_a_sender_that_died_after_the_commit_is_replaced_once_its_lease_runs_out(due_invitation, now):
    from feedback.services.invitations import _invitation_claim

    _invitation_claim(invitation_id=due_invitation.pk)  # committed `sending`, then the process died

    assert feedback_invitations_send_due().sent == 0 and not mail.outbox
    now.shift(SEND_LEASE)
    assert feedback_invitations_send_due().sent == 1 and len(mail.outbox) == 1


def test_the_invitation_fails_after_the_last_try(due_invitation, now):
    FAILURES.extend(smtplib.SMTPRecipientsRefused({"x": (550, b"no")}) for _ in range(MAX_SEND_ATTEMPTS))

    for _ in range(MAX_SEND_ATTEMPTS):
        feedback_invitations_send_due()
        due_invitation.refresh_from_db()
        if due_invitation.next_attempt_at:
            now.move_to(due_invitation.next_attempt_at)

    assert due_invitation.status == Invitation.Status.FAILED
    assert due_invitation.send_attempts == MAX_SEND_ATTEMPTS and not mail.outbox
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        assert feedback_invitations_send_due().failed == 0  # given up: an operator looks
