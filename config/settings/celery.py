"""Celery: eager (in-process) unless CELERY_BROKER_URL names a real broker."""

from celery.schedules import crontab

from config.env import env

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL or "cache+memory://")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if not CELERY_BROKER_URL:
    # Eager tasks still build a producer in Celery 5.7: give it the in-memory transport
    # so nothing ever reaches for a broker on localhost.
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic schedules are declared here, in code; later apps add their entries.
CELERY_BEAT_SCHEDULE: dict = {
    "billing-run": {"task": "billing.run_scheduled", "schedule": crontab(minute="*/15")},
}
# Payments: dunning retries that have come due (collection itself is queued per billing-run chunk).
# Billing runs without progress (killed process, lost chunks) are marked interrupted.
CELERY_BEAT_SCHEDULE["billing-runs-sweep"] = {"task": "billing.runs_sweep", "schedule": crontab(minute="*/5")}
# Issue 16 (usage): usage thresholds of customers who reported usage since the last pass.
CELERY_BEAT_SCHEDULE["usage-thresholds-sweep"] = {
    "task": "billing.usage_thresholds_sweep",
    "schedule": env.float("TARIF_USAGE_THRESHOLDS_POLL_SECONDS", default=60.0),
}
CELERY_BEAT_SCHEDULE["dunning-run-due"] = {"task": "billing.dunning_run_due", "schedule": crontab(minute="*/15")}
# Reports: keep the MRR summary current between billing runs (docs/reports.md).
CELERY_BEAT_SCHEDULE["reports-refresh-mrr-summary"] = {
    "task": "reports.refresh_mrr_summary",
    "schedule": crontab(minute="7,22,37,52"),
}
# Issue 20: the month summaries of the billed, invoices-by-status and revenue-recognition
# reports (the months changed since the last refresh), and a nightly full rebuild for what no
# invoice's `updated_at` shows (a deleted draft, a customer's new country).
CELERY_BEAT_SCHEDULE["reports-refresh-summaries"] = {
    "task": "reports.refresh_summaries",
    "schedule": crontab(minute="9,24,39,54"),
}
CELERY_BEAT_SCHEDULE["reports-rebuild-summaries"] = {
    "task": "reports.refresh_summaries",
    "schedule": crontab(minute=41, hour=3),
    "kwargs": {"full": True},
}
# Issue 20: the console home's whole-book counts (live subscriptions, receivables, next run's due),
# shown "as of" their refresh instead of counted on every view (reports/home_figures.py).
CELERY_BEAT_SCHEDULE["reports-refresh-home-figures"] = {
    "task": "reports.refresh_home_figures",
    "schedule": crontab(minute="*"),
}
# Issue 20 item 7: the usage report's page for its preset periods (reports/usage_digest.py).
CELERY_BEAT_SCHEDULE["reports-refresh-usage-digest"] = {
    "task": "reports.refresh_usage_digest",
    "schedule": crontab(minute="3,18,33,48"),
}

# Lifecycle events (issue 16): trial_will_end / invoice.upcoming notices, pending updates' expiry.
CELERY_BEAT_SCHEDULE["lifecycle-notices-sweep"] = {
    "task": "billing.lifecycle_notices_sweep",
    "schedule": crontab(minute="*/5"),
}
CELERY_BEAT_SCHEDULE["pending-updates-expire"] = {
    "task": "billing.pending_updates_expire",
    "schedule": crontab(minute="*/5"),
}

# Three kinds of work, each on its own queue so they scale (and fail) independently:
# the billing run (`celery`, the default), payments, and document rendering.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "billing.collect_invoices": {"queue": "payments"},
    "billing.dunning_run_due": {"queue": "payments"},
    "billing.dunning_retry_customer": {"queue": "payments"},
    "invoices.render_pdf": {"queue": "documents"},
}
TARIF_WORKER_QUEUES = "celery,payments,documents"
# Outbound webhooks: each endpoint consumes the event log; a pass fans out new events and sends what is due.
CELERY_BEAT_SCHEDULE["webhooks-dispatch"] = {
    "task": "billing.webhooks_dispatch",
    "schedule": env.float("TARIF_WEBHOOK_POLL_SECONDS", default=5.0),
}
CELERY_TASK_ROUTES["billing.webhooks_dispatch"] = {"queue": "payments"}
CELERY_BEAT_SCHEDULE["idempotency-records-purge"] = {
    "task": "config.idempotency_records_purge",
    "schedule": crontab(minute=7),
}
# Prepaid credits (issue 16): expire grants past their expiry, grant paid credits whose purchase
# invoice is paid, and invoice the automatic top-ups still waiting (the durable side of their fast path).
CELERY_BEAT_SCHEDULE["wallets-sweep"] = {"task": "wallets.sweep", "schedule": crontab(minute="*/5")}
# Accounting ledger (issue 19): recognise deferred revenue (D 487 / C 706) every night.
CELERY_BEAT_SCHEDULE["ledger-recognize-revenue"] = {
    "task": "ledger.recognize_revenue",
    "schedule": crontab(hour=1, minute=17),
}
# Issue 19 (accounting exports): re-send ledger exports whose message was lost, fail stuck ones.
CELERY_BEAT_SCHEDULE["ledger-exports-sweep"] = {"task": "ledger.exports_sweep", "schedule": crontab(minute="*/5")}
# Issue 19 (ledger): number (validate) entries up to TARIF_LEDGER_VALIDATION_LAG_DAYS before today, nightly.
CELERY_BEAT_SCHEDULE["ledger-validate-entries"] = {
    "task": "ledger.validate_entries",
    "schedule": crontab(hour=1, minute=37),
}
