"""E-invoicing through an approved platform (issue 18, docs/einvoicing.md)."""

from datetime import timedelta

from config.env import env
from config.settings.celery import CELERY_BEAT_SCHEDULE, CELERY_TASK_ROUTES

# How long a directory (annuaire) answer is trusted before it is asked again.
TARIF_EINVOICING_DIRECTORY_TTL_DAYS = env.int("TARIF_EINVOICING_DIRECTORY_TTL_DAYS", default=7)
# Submission retries on an unavailable platform: exponential backoff from the base, capped.
TARIF_EINVOICING_RETRY_BASE_SECONDS = env.int("TARIF_EINVOICING_RETRY_BASE_SECONDS", default=60)
TARIF_EINVOICING_RETRY_MAX_SECONDS = env.int("TARIF_EINVOICING_RETRY_MAX_SECONDS", default=6 * 3600)
TARIF_EINVOICING_MAX_ATTEMPTS = env.int("TARIF_EINVOICING_MAX_ATTEMPTS", default=12)
# A submission left "submitting" this long (a worker died mid-call) is queued again; the PA
# deduplicates on the tracking id, so the retry never makes a second flow.
TARIF_EINVOICING_STUCK_SECONDS = env.int("TARIF_EINVOICING_STUCK_SECONDS", default=600)
# PA calls of a submission batch made at once (threads of the sweeper, each with its own
# kept-alive connection); 1 submits one document after the other.
TARIF_EINVOICING_SUBMIT_CONCURRENCY = env.int("TARIF_EINVOICING_SUBMIT_CONCURRENCY", default=4)
# Inbound status webhooks older than this are refused (replay protection).
TARIF_EINVOICING_WEBHOOK_TOLERANCE_SECONDS = env.int("TARIF_EINVOICING_WEBHOOK_TOLERANCE_SECONDS", default=300)
# The local PA simulator for `make run`'s demo (scripts/run-demo starts it; seed_demo points the demo brand at it).
TARIF_PA_SIMULATOR = env.bool("TARIF_PA_SIMULATOR", default=False)
TARIF_PA_SIMULATOR_URL = env.str("TARIF_PA_SIMULATOR_URL", default="http://127.0.0.1:8765")

CELERY_TASK_ROUTES["einvoicing.submit_due"] = {"queue": "documents"}
CELERY_TASK_ROUTES["einvoicing.submit_transmission"] = {"queue": "documents"}
CELERY_TASK_ROUTES["einvoicing.poll_statuses"] = {"queue": "documents"}
CELERY_BEAT_SCHEDULE["einvoicing-submit-due"] = {"task": "einvoicing.submit_due", "schedule": timedelta(minutes=1)}
CELERY_BEAT_SCHEDULE["einvoicing-poll-statuses"] = {
    "task": "einvoicing.poll_statuses",
    "schedule": timedelta(minutes=5),
}
