"""Survey invitations: throttling, the emailed link, and answering through it.

The link carries a random 256-bit token; only its SHA-256 is stored (`token_hash`).
Why not a TimestampSigner payload: the link must also be single-use and bound to one
invitation row, which needs database state anyway; a random token looked up by its
hash gives that with no secret to rotate, and a leaked database holds no usable link.
Expiry (`expires_at`, TARIF_FEEDBACK_LINK_DAYS after sending) and single use
(`answered_at`, the invitation row locked while answering, one response per
invitation under a unique constraint) are checked on the server.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from config import clock
from config.events.log import event_record
from config.types import ActingUser
from customers.models import Customer
from feedback.errors import InvitationLinkError
from feedback.locks import customer_qs_for_update, invitation_qs_for_update
from feedback.models import Invitation, Survey, SurveyResponse
from feedback.services.emails import invitation_email_send
from feedback.services.responses import survey_language_for, survey_response_record

TOKEN_BYTES = 32


def throttle_days(*, survey: Survey) -> int:
    if survey.throttle_days is not None:
        return survey.throttle_days
    return int(getattr(settings, "TARIF_FEEDBACK_THROTTLE_DAYS", 30))


def link_days() -> int:
    return int(getattr(settings, "TARIF_FEEDBACK_LINK_DAYS", 30))


def customer_recently_asked(*, customer: Customer, survey: Survey, at: datetime) -> bool:
    """Was the customer asked (invited, or answered, e.g. in the portal) within the survey's
    throttling window? Scope `global` counts every survey, `survey` only this one."""
    days = throttle_days(survey=survey)
    if days == 0:
        return False
    since = at - timedelta(days=days)
    invitations = Invitation.objects.filter(
        customer=customer,
        status__in=(Invitation.Status.SENDING, Invitation.Status.SENT, Invitation.Status.ANSWERED),
        sent_at__gt=since,
    )
    responses = SurveyResponse.objects.filter(customer=customer, submitted_at__gt=since)
    if survey.throttle_scope == Survey.ThrottleScope.SURVEY:
        invitations = invitations.filter(survey=survey)
        responses = responses.filter(survey=survey)
    return invitations.exists() or responses.exists()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_url(*, token: str) -> str:
    return settings.TARIF_BASE_URL.rstrip("/") + reverse("feedback:survey", kwargs={"token": token})


MAX_SEND_ATTEMPTS = 8
SEND_LEASE = timedelta(minutes=10)  # a claim older than this with no outcome: the sender died
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=6)


def _retry_delay(attempts: int) -> timedelta:
    return min(RETRY_FIRST * (2 ** max(attempts - 1, 0)), RETRY_MAX)


def invitation_send(*, invitation_id: int) -> str:
    """Send one due invitation (or one whose last try failed), or skip it (throttled, survey
    switched off). Returns the new status.

    Record → commit → call → record, like collection: the claim (status `sending`, the link's
    token hash, the throttling instant) commits under the customer and invitation locks;
    the email goes out with no transaction open; then the outcome is recorded: `sent`, or
    the error and the next try, which the scan (`feedback_invitations_send_due`) makes; a
    crash between the commit and the email leaves a `sending` row the scan retries once
    its lease runs out. At-least-once delivery: a retry mails a new link (only the token's
    hash is stored, so the old link stops working)."""
    claim = _invitation_claim(invitation_id=invitation_id)
    if isinstance(claim, str):
        return claim
    invitation, customer, token = claim
    try:
        invitation_email_send(invitation=invitation, customer=customer, url=invitation_url(token=token))
    except Exception as error:  # noqa: BLE001 - any failure of the mail server is recorded and retried
        return _invitation_send_failed(invitation_id=invitation_id, token=token, error=error)
    return _invitation_send_succeeded(invitation_id=invitation_id, token=token)


def _invitation_claim(*, invitation_id: int) -> str | tuple[Invitation, Customer, str]:
    """Lock, check and record the sending; returns the status when there is nothing to send."""
    with transaction.atomic(durable=True):
        customer_id = Invitation.objects.values_list("customer_id", flat=True).get(pk=invitation_id)
        customer = customer_qs_for_update().get(pk=customer_id)
        invitation = invitation_qs_for_update().select_related("survey").get(pk=invitation_id)
        retrying = invitation.status == Invitation.Status.SENDING
        if retrying and (invitation.next_attempt_at is None or invitation.next_attempt_at > clock.system_now()):
            return invitation.status  # another sender holds it, or its next try is not due yet
        if invitation.status not in (Invitation.Status.SCHEDULED, Invitation.Status.SENDING):
            return invitation.status
        survey = invitation.survey
        if not survey.active:
            return _skip(invitation, Invitation.Status.SKIPPED, "survey inactive")
        now = clock.now(customer=customer)
        if not retrying:
            if customer_recently_asked(customer=customer, survey=survey, at=now):
                return _skip(
                    invitation, Invitation.Status.THROTTLED, f"asked within {throttle_days(survey=survey)} days"
                )
            invitation.sent_at = now  # the throttling instant: a `sending` invitation counts as asked
            invitation.expires_at = now + timedelta(days=link_days())
        token = secrets.token_urlsafe(TOKEN_BYTES)
        invitation.token_hash = token_hash(token)
        invitation.status = Invitation.Status.SENDING
        invitation.language = survey_language_for(customer=customer)
        invitation.email = customer.email
        invitation.send_attempts += 1
        invitation.next_attempt_at = clock.system_now() + SEND_LEASE
        invitation.save(
            update_fields=[
                "token_hash",
                "status",
                "sent_at",
                "expires_at",
                "language",
                "email",
                "send_attempts",
                "next_attempt_at",
            ]
        )
    return invitation, customer, token


def _own_claim_for_update(*, invitation_id: int, token: str) -> Invitation | None:
    """The invitation, locked, if it is still `sending` under this sender's token."""
    invitation = invitation_qs_for_update().get(pk=invitation_id)
    if invitation.status != Invitation.Status.SENDING or invitation.token_hash != token_hash(token):
        return None  # a later retry took it over: its own outcome will be recorded
    return invitation


def _invitation_send_succeeded(*, invitation_id: int, token: str) -> str:
    with transaction.atomic(durable=True):
        invitation = _own_claim_for_update(invitation_id=invitation_id, token=token)
        if invitation is None:
            return Invitation.objects.values_list("status", flat=True).get(pk=invitation_id)
        invitation.status = Invitation.Status.SENT
        invitation.next_attempt_at = None
        invitation.send_error = ""
        invitation.save(update_fields=["status", "next_attempt_at", "send_error"])
        event_record(
            type="feedback.invitation_sent",
            object_type="survey_invitation",
            object_id=invitation.pk,
            customer_id=invitation.customer_id,
            occurred_at=invitation.sent_at or clock.system_now(),
            data={"survey": invitation.survey_id, "trigger": invitation.trigger, "email": invitation.email},
        )
    return invitation.status


def _invitation_send_failed(*, invitation_id: int, token: str, error: Exception) -> str:
    with transaction.atomic(durable=True):
        invitation = _own_claim_for_update(invitation_id=invitation_id, token=token)
        if invitation is None:
            return Invitation.objects.values_list("status", flat=True).get(pk=invitation_id)
        invitation.send_error = f"{type(error).__name__}: {error}"[:300]
        if invitation.send_attempts >= MAX_SEND_ATTEMPTS:
            invitation.status = Invitation.Status.FAILED
            invitation.next_attempt_at = None
        else:
            invitation.next_attempt_at = clock.system_now() + _retry_delay(invitation.send_attempts)
        invitation.save(update_fields=["status", "next_attempt_at", "send_error"])
    return invitation.status


def _skip(invitation: Invitation, status: str, reason: str) -> str:
    invitation.status = status
    invitation.skip_reason = reason
    invitation.save(update_fields=["status", "skip_reason"])
    return status


def invitation_for_token(
    *, token: str, portal_customer: Customer | None = None, for_update: bool = False
) -> Invitation:
    """The invitation a link opens, or InvitationLinkError saying clearly why not."""
    if not token or len(token) > 100:
        raise InvitationLinkError("invalid")
    queryset = invitation_qs_for_update() if for_update else Invitation.objects.all()
    invitation = (
        queryset.select_related("survey", "customer", "customer__test_clock")
        .filter(token_hash=token_hash(token))
        .first()
    )
    if invitation is None:
        raise InvitationLinkError("invalid")
    if portal_customer is not None and portal_customer.pk != invitation.customer_id:
        raise InvitationLinkError("other_customer", language=invitation.language)
    if invitation.status == Invitation.Status.ANSWERED or invitation.answered_at is not None:
        raise InvitationLinkError("used", language=invitation.language)
    # `sending`: the email may be out before its outcome is recorded (the token is the one mailed).
    if invitation.status not in (Invitation.Status.SENT, Invitation.Status.SENDING):
        raise InvitationLinkError("invalid")
    if invitation.expires_at is None or clock.now(customer=invitation.customer) >= invitation.expires_at:
        raise InvitationLinkError("expired", language=invitation.language)
    if not invitation.survey.active:
        raise InvitationLinkError("closed", language=invitation.language)
    return invitation


def invitation_answer(
    *,
    token: str,
    answers: Mapping[int, object],
    portal_customer: Customer | None = None,
    acting_user: ActingUser = None,
) -> SurveyResponse:
    """Answer a survey through its link: checked and recorded under the invitation's lock,
    so two submissions of the same link cannot both get through."""
    with transaction.atomic(durable=True):
        invitation = invitation_for_token(token=token, portal_customer=portal_customer, for_update=True)
        now = clock.now(customer=invitation.customer)
        response = survey_response_record(
            survey=invitation.survey,
            customer=invitation.customer,
            answers=answers,
            trigger=invitation.trigger,
            invitation=invitation,
            language=invitation.language,
            at=now,
            acting_user=acting_user,
        )
        invitation.status = Invitation.Status.ANSWERED
        invitation.answered_at = now
        invitation.save(update_fields=["status", "answered_at"])
    return response
