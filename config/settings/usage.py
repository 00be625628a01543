"""Usage at scale (issue 20, docs/usage-at-scale.md): monthly partitions and raw-event retention."""

from datetime import timedelta

from config.env import env
from config.settings.celery import CELERY_BEAT_SCHEDULE

# Days raw usage events are kept after their month ends (rollups are kept forever);
# unset: raw events are kept forever. Events older than this are refused at ingestion.
_retention = env.str("TARIF_USAGE_RAW_RETENTION_DAYS", default="")
TARIF_USAGE_RAW_RETENTION_DAYS: int | None = int(_retention) if _retention else None
# Months of usage partitions created ahead of the current one (PostgreSQL).
TARIF_USAGE_PARTITIONS_AHEAD = env.int("TARIF_USAGE_PARTITIONS_AHEAD", default=3)

CELERY_BEAT_SCHEDULE["usage-partitions-ensure"] = {
    "task": "billing.usage_partitions_ensure",
    "schedule": timedelta(hours=24),
}
CELERY_BEAT_SCHEDULE["usage-raw-retention"] = {
    "task": "billing.usage_raw_retention",
    "schedule": timedelta(hours=24),
}
