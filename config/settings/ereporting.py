"""E-reporting and the archive (issue 18 items 7-8): the sweep schedule, the first period, retention."""

from celery.schedules import crontab

from config.env import env
from config.settings.celery import CELERY_BEAT_SCHEDULE

# Periods starting before this date are never built automatically (the reform's start).
TARIF_EREPORTING_SINCE = env.str("TARIF_EREPORTING_SINCE", default="2026-09-01")
# Years an archive record is kept (its `retain_until`); records are never deleted by Tarif.
TARIF_ARCHIVE_RETENTION_YEARS = env.int("TARIF_ARCHIVE_RETENTION_YEARS", default=10)

CELERY_BEAT_SCHEDULE["ereporting-close-due"] = {"task": "ereporting.close_due", "schedule": crontab(minute=17)}
