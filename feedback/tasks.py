"""Celery tasks: thin wrappers over feedback services (scheduled in config/settings/celery.py)."""

from __future__ import annotations

from celery import shared_task

from feedback.services import feedback_events_consume, feedback_invitations_send_due


@shared_task(acks_late=True, name="feedback.process_triggers")
def feedback_process_triggers() -> dict[str, int]:
    """Beat entry point: read new domain events into scheduled invitations, then send the due ones."""
    consumed = feedback_events_consume()
    sent = feedback_invitations_send_due()
    return {
        "events_read": consumed.events_read,
        "scheduled": consumed.invitations_scheduled,
        "sent": sent.sent,
        "throttled": sent.throttled,
        "skipped": sent.skipped,
        "failed": sent.failed,
    }
