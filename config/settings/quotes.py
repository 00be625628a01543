"""Quotes (issue 17 item 4): validity, number formats, the public page's limits, the expiry sweeper."""

from celery.schedules import crontab

from config.env import env
from config.settings.celery import CELERY_BEAT_SCHEDULE

# Days a new quote stays valid unless the console says otherwise.
TARIF_QUOTE_VALIDITY_DAYS = env.int("TARIF_QUOTE_VALIDITY_DAYS", default=30)
# Per brand slug, e.g. {"atelier-nuage": "DEV-{year}-{seq:04d}"}; default DEV-… (French brands) or Q-….
TARIF_QUOTE_NUMBER_FORMATS: dict[str, str] = {}
# The public acceptance page (django-ratelimit, per client address): views, and acceptance attempts.
TARIF_RATELIMIT_QUOTE_VIEW = env.str("TARIF_RATELIMIT_QUOTE_VIEW", default="60/m")
TARIF_RATELIMIT_QUOTE_ACCEPT = env.str("TARIF_RATELIMIT_QUOTE_ACCEPT", default="10/m")
# Time trap: an acceptance form sent back faster than this is a robot's.
TARIF_QUOTE_MIN_FILL_SECONDS = env.float("TARIF_QUOTE_MIN_FILL_SECONDS", default=2.0)

CELERY_BEAT_SCHEDULE["quotes-expire"] = {"task": "quotes.expire_due", "schedule": crontab(minute="*/10")}
