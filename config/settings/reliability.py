"""Reliability and security settings (issue #9): audit log, request ids, log scrubbing,
session timeouts, maintenance mode, metrics, backups. Imported at the end of base.py, which then
calls `reliability_extend` on its app, middleware and logging lists (this module never imports base)."""

import ipaddress
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from config.env import BASE_DIR, env


def reliability_extend(*, installed_apps: list[str], middleware: list[str], logging: dict[str, Any]) -> None:
    """Add this module's apps, middleware and log filters to base.py's lists (in place).

    base.py calls it after importing this module: the import goes one way only.
    """
    installed_apps += ["django_prometheus", "config.audit", "config.ops"]

    def before(name: str, *new: str) -> None:
        index = middleware.index(name)
        middleware[index:index] = list(new)

    # Request ids first so every log line of the request carries one; Prometheus wraps everything else.
    middleware.insert(0, "config.audit.middleware.RequestIdMiddleware")
    middleware.insert(1, "django_prometheus.middleware.PrometheusBeforeMiddleware")
    before(
        "axes.middleware.AxesMiddleware",
        "config.ops.middleware.SessionTimeoutMiddleware",
        "config.ops.middleware.MaintenanceModeMiddleware",
        "config.audit.middleware.AdminAuditMiddleware",
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    )
    # Every log line: request id, and secrets / card numbers / IBANs / emails masked.
    logging["filters"] = {
        "request_id": {"()": "config.audit.logging.RequestIdFilter"},
        "scrub": {"()": "config.audit.logging.ScrubbingFilter"},
    }
    logging["formatters"]["plain"]["format"] = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
    logging["handlers"]["console"]["filters"] = ["request_id", "scrub"]


# Client address behind reverse proxies (config.audit.context.client_ip, used by django-axes,
# the audit log and /metrics): the addresses or networks of our own proxies. When the peer
# is one of them, the rightmost X-Forwarded-For hop that is not ours is the client.
if env.str("TARIF_TRUSTED_PROXY_COUNT", default=""):
    raise ImproperlyConfigured(
        "TARIF_TRUSTED_PROXY_COUNT is replaced by TARIF_TRUSTED_PROXIES (the proxies' addresses or networks)."
    )
TARIF_TRUSTED_PROXIES = [
    str(ipaddress.ip_network(proxy, strict=False)) for proxy in env.list("TARIF_TRUSTED_PROXIES", default=[])
]
AXES_CLIENT_IP_CALLABLE = "config.audit.context.client_ip"


# Passwords, OWASP ASVS 4.0 level 2 (V2.1): at least 12 characters, at most 128, any
# characters, no composition rules, checked against common / breached passwords.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "config.ops.passwords.MaximumLengthValidator", "OPTIONS": {"max_length": 128}},
    {
        "NAME": "config.ops.passwords.BreachedPasswordValidator",
        "OPTIONS": {"password_list_path": env.str("TARIF_BREACHED_PASSWORDS_FILE", default="") or None},
    },
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Sessions end after this much inactivity, and in any case this long after sign-in (seconds).
TARIF_SESSION_IDLE_TIMEOUT_STAFF = env.int("TARIF_SESSION_IDLE_TIMEOUT_STAFF", default=15 * 60)
TARIF_SESSION_ABSOLUTE_TIMEOUT_STAFF = env.int("TARIF_SESSION_ABSOLUTE_TIMEOUT_STAFF", default=8 * 3600)
TARIF_SESSION_IDLE_TIMEOUT_CUSTOMER = env.int("TARIF_SESSION_IDLE_TIMEOUT_CUSTOMER", default=30 * 60)
TARIF_SESSION_ABSOLUTE_TIMEOUT_CUSTOMER = env.int("TARIF_SESSION_ABSOLUTE_TIMEOUT_CUSTOMER", default=12 * 3600)

# Read-only maintenance: reads keep working, writes answer 503. The flag file lets an
# operator switch it on a running fleet (`manage.py maintenance on`) without a restart.
TARIF_MAINTENANCE_MODE = env.bool("TARIF_MAINTENANCE_MODE", default=False)
TARIF_MAINTENANCE_FLAG_FILE = env.str("TARIF_MAINTENANCE_FLAG_FILE", default="")

# /metrics: readable with `Authorization: Bearer <token>`; no address is let in without it
# unless listed here explicitly (behind a local proxy every client would look like 127.0.0.1).
TARIF_METRICS_TOKEN = env.str("TARIF_METRICS_TOKEN", default="")
TARIF_METRICS_ALLOWED_IPS = env.list("TARIF_METRICS_ALLOWED_IPS", default=[])
PROMETHEUS_EXPORT_MIGRATIONS = False

# Backups: where `manage.py backup` writes by default; PostgreSQL client binaries (pg_dump, pg_restore).
TARIF_BACKUP_DIR = env.str("TARIF_BACKUP_DIR", default=str(BASE_DIR / "var" / "backups"))
TARIF_PG_BIN_DIR = env.str("TARIF_PG_BIN_DIR", default="")

# Redis redelivers a task whose worker died (acks_late) once this many seconds have passed
# since delivery: keep it above the longest task, below what an outage may cost.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("TARIF_CELERY_VISIBILITY_TIMEOUT", default=3600)}

from celery.schedules import crontab  # noqa: E402

from config.settings.celery import CELERY_BEAT_SCHEDULE  # noqa: E402

# Durable hand-offs (config/ops/handoffs.py): collection, PDF rendering and notifications that
# follow a commit are recorded in it; the sweeper re-enqueues, every minute, those still not
# done this many seconds after their commit (a crash between the commit and the enqueue).
TARIF_HANDOFF_GRACE_SECONDS = env.int("TARIF_HANDOFF_GRACE_SECONDS", default=120)
CELERY_BEAT_SCHEDULE["handoffs-sweep"] = {"task": "ops.handoffs_sweep", "schedule": crontab(minute="*")}
