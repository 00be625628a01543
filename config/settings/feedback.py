"""Feedback surveys (docs/feedback.md): throttling, link lifetime, and the beat entry."""

from celery.schedules import crontab

from config.env import env
from config.settings.celery import CELERY_BEAT_SCHEDULE

# A customer is invited at most once per this many days (per survey or across all
# surveys, as each survey says); a survey may set its own window.
TARIF_FEEDBACK_THROTTLE_DAYS = env.int("TARIF_FEEDBACK_THROTTLE_DAYS", default=30)
# How long an emailed survey link stays valid.
TARIF_FEEDBACK_LINK_DAYS = env.int("TARIF_FEEDBACK_LINK_DAYS", default=30)
# Domain events younger than this wait for the next pass (their transaction may not have committed).
TARIF_FEEDBACK_EVENT_LAG_SECONDS = env.int("TARIF_FEEDBACK_EVENT_LAG_SECONDS", default=30)

CELERY_BEAT_SCHEDULE["feedback-process-triggers"] = {
    "task": "feedback.process_triggers",
    "schedule": crontab(minute="*/5"),
}
