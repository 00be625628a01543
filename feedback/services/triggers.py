"""Survey triggers, driven by billing's domain event log.

`feedback_events_consume` reads the DomainEvent rows after its cursor through the one
consumer helper (`config.events.consumers`: cursor, look-back, each event id once) and
turns the ones that matter into *scheduled* invitations (due at the event's time plus the
survey's delay); `feedback_invitations_send_due` (the periodic scan) sends those whose due
time has come on the customer's clock (test clocks included). Both are idempotent: an
invitation is unique per (survey, customer, trigger key), so re-reading an event (a reset
cursor) or re-running the scan never invites twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils.translation import gettext as _

from config import clock
from config.events.consumers import EventConsumer, events_consume
from config.events.log import event_record
from config.events.models import DomainEvent
from customers.models import Customer
from feedback.errors import FeedbackError
from feedback.models import Invitation, Survey, SurveyResponse, Trigger
from feedback.services.invitations import invitation_send

CONSUMER_NAME = "feedback.triggers"
FEATURE_EVENT = "feedback.feature_used"
CONSUMED_TYPES = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "dunning.recovered",
    FEATURE_EVENT,
)
_FEATURE_KEY = re.compile(r"^[-a-zA-Z0-9_.]{1,100}$")
# Cancellations the customer did not choose: no churn-reason survey for those.
INVOLUNTARY_CANCEL_REASONS = {"dunning_exhausted"}


def event_lag() -> timedelta:
    """Events younger than this are left for the next pass (the consumer helper's `settle`;
    events committed late below the cursor are caught by its look-back in any case)."""
    return timedelta(seconds=int(getattr(settings, "TARIF_FEEDBACK_EVENT_LAG_SECONDS", 30)))


def feedback_feature_event_record(*, customer: Customer, feature: str, at: datetime | None = None) -> DomainEvent:
    """A customer used `feature` (reported over the API): logged as a domain event, which
    the consumer turns into invitations of the surveys that wait for that feature.

    Checked before anything is written (one insert, no transaction of its own), so a
    refusal leaves the caller's transaction usable."""
    if not _FEATURE_KEY.match(feature or ""):
        raise FeedbackError(_("A feature key is 1 to 100 letters, digits, dots, dashes or underscores."))
    at = at or clock.now(customer=customer)
    if at.tzinfo is None:
        raise FeedbackError(_("The time of a feature event must include a time zone."))
    return event_record(
        type=FEATURE_EVENT,
        object_type="feature",
        object_id=feature,
        customer_id=customer.pk,
        occurred_at=at,
        data={"feature": feature},
    )


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    events_read: int
    invitations_scheduled: int
    cursor: int


def feedback_events_consume(*, batch_size: int = 500) -> ConsumeResult:
    """Read new domain events in batches, each batch in one transaction with the cursor."""
    consumer = EventConsumer(name=CONSUMER_NAME, types=CONSUMED_TYPES, batch=batch_size, settle=event_lag())
    read = scheduled = 0

    def handle(events: Sequence[DomainEvent]) -> None:
        nonlocal scheduled
        for event in events:
            scheduled += _handle(event)

    while True:
        result = events_consume(consumer=consumer, handle=handle, now=clock.system_now())
        read += result.handled
        if result.new < batch_size:
            return ConsumeResult(events_read=read, invitations_scheduled=scheduled, cursor=result.cursor)


def _handle(event: DomainEvent) -> int:
    if event.customer_id is None:
        return 0
    data = event.data or {}
    subscription_id = data.get("subscription") or event.object_id
    if event.type == "customer.subscription.created":
        return _schedule(event, Trigger.SUBSCRIPTION_STARTED, f"subscription:{subscription_id}:started")
    if event.type == "dunning.recovered":
        return _schedule(event, Trigger.PAYMENT_RECOVERED, f"dunning:{event.object_id}")
    if event.type == FEATURE_EVENT:
        feature = str(data.get("feature", ""))
        return _schedule(event, Trigger.FEATURE_USED, f"feature:{feature}", feature=feature)
    if _is_cancellation(event):
        if _answered_cancellation_survey(event, subscription_id):
            return 0
        return _schedule(event, Trigger.CANCELLATION, f"cancellation:{subscription_id}")
    if event.type == "customer.subscription.updated" and _is_plan_change(data):
        return _schedule(event, Trigger.PLAN_CHANGED, f"plan_change:{event.pk}")
    return 0


def _is_cancellation(event: DomainEvent) -> bool:
    data = event.data or {}
    if data.get("reason") in INVOLUNTARY_CANCEL_REASONS:
        return False
    if event.type == "customer.subscription.deleted":
        return True
    return event.type == "customer.subscription.updated" and data.get("cancel_at_period_end") is True


def _is_plan_change(data: dict[str, Any]) -> bool:
    """A change of prices (another plan), not a quantity change on the same plan."""
    if "previous_items" not in data or "items" not in data:
        return False

    def prices(items: list[dict[str, Any]]) -> set[Any]:
        return {item.get("price") for item in items}

    return prices(data["previous_items"]) != prices(data["items"])


def _answered_cancellation_survey(event: DomainEvent, subscription_id: Any) -> bool:
    """The customer already told us why in the portal: do not email the same question."""
    assert event.customer_id is not None  # _handle skips events without a customer
    return SurveyResponse.objects.filter(
        Q(subscription_id=subscription_id) | Q(submitted_at__gte=event.occurred_at - timedelta(days=1)),
        customer_id=event.customer_id,
        trigger=Trigger.CANCELLATION,
    ).exists()


def _schedule(event: DomainEvent, trigger: str, key: str, *, feature: str = "") -> int:
    assert event.customer_id is not None  # _handle skips events without a customer
    surveys = Survey.objects.filter(active=True, trigger=trigger, questions__isnull=False).distinct()
    if feature:
        surveys = surveys.filter(feature=feature)
    invitations = [
        Invitation(
            survey=survey,
            customer_id=event.customer_id,
            trigger=trigger,
            trigger_key=key[:120],
            source_event=event,
            due_at=event.occurred_at + timedelta(days=survey.delay_days),
        )
        for survey in surveys
    ]
    if not invitations:
        return 0
    already = set(
        Invitation.objects.filter(
            customer_id=event.customer_id, trigger_key=key[:120], survey__in=[i.survey for i in invitations]
        ).values_list("survey_id", flat=True)
    )
    fresh = [invitation for invitation in invitations if invitation.survey_id not in already]
    # The unique constraint is the real guard (two consumers, a restored cursor...).
    Invitation.objects.bulk_create(fresh, ignore_conflicts=True)
    return len(fresh)


@dataclass(frozen=True, slots=True)
class SendResult:
    sent: int
    throttled: int
    skipped: int
    failed: int = 0  # the mail server refused: retried by a later scan (or given up, `failed`)


def invitations_due() -> QuerySet[Invitation]:
    """Scheduled invitations whose time has come on their customer's clock, and invitations
    whose sending failed (or whose sender died) once their next try is due (real time)."""
    now = clock.system_now()
    scheduled = Q(status=Invitation.Status.SCHEDULED) & (
        Q(customer__test_clock__isnull=True, due_at__lte=now)
        | Q(customer__test_clock__isnull=False, due_at__lte=F("customer__test_clock__frozen_time"))
    )
    retry = Q(status=Invitation.Status.SENDING, next_attempt_at__lte=now)
    return Invitation.objects.filter(scheduled | retry).order_by("due_at", "survey__position", "pk")


def feedback_invitations_send_due(*, limit: int = 1000) -> SendResult:
    """The periodic scan: send (or skip, when throttled) every invitation that is due."""
    counts: dict[str, int] = {status: 0 for status in Invitation.Status}
    for invitation_id in list(invitations_due().values_list("pk", flat=True)[:limit]):
        status = invitation_send(invitation_id=invitation_id)
        counts[Invitation.Status(status)] += 1
    return SendResult(
        sent=counts[Invitation.Status.SENT],
        throttled=counts[Invitation.Status.THROTTLED],
        skipped=counts[Invitation.Status.SKIPPED],
        failed=counts[Invitation.Status.SENDING] + counts[Invitation.Status.FAILED],
    )


@transaction.atomic(savepoint=False)
def survey_invite(*, survey: Survey, customer: Customer, key: str, at: datetime | None = None) -> Invitation:
    """Schedule one invitation by hand (staff, seed data), due at `at` (default: now on the
    customer's clock); the scan sends it, throttling included. Same `key`, same invitation."""
    invitation, _created = Invitation.objects.get_or_create(
        survey=survey,
        customer=customer,
        trigger_key=f"manual:{key}"[:120],
        defaults={"trigger": Trigger.MANUAL, "due_at": at or clock.now(customer=customer)},
    )
    return invitation
