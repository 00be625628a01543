"""Tasks for the killed-worker test, loaded by its worker with `--include tests.ops.slow_tasks`.

The task is the real billing chunk, preceded by a pause during which the test kills the
worker; it takes Tarif's Celery settings (acks_late, reject_on_worker_lost) like any task.
"""

from __future__ import annotations

import time
from pathlib import Path

from celery import shared_task


@shared_task(name="tests.slow_billing_chunk")
def slow_billing_chunk(run_id: int, subscription_ids: list[int], started_marker: str, pause: float) -> int:
    from billing.services.billing_run import billing_run_process_chunk

    Path(started_marker).write_text("started")
    time.sleep(pause)
    return billing_run_process_chunk(run_id=run_id, subscription_ids=subscription_ids).invoices
