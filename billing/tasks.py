"""Celery tasks: thin wrappers that load ids and call one service."""

from __future__ import annotations

from celery import shared_task

from billing import clock


@shared_task(bind=True, acks_late=True, max_retries=5, default_retry_delay=30, name="billing.run_chunk")
def billing_run_chunk(self, run_id: int, subscription_ids: list[int]) -> dict[str, int]:
    from billing.services.billing_run import billing_run_process_chunk

    try:
        result = billing_run_process_chunk(run_id=run_id, subscription_ids=subscription_ids)
    except Exception as error:  # retried; the chunk is idempotent
        raise self.retry(exc=error) from error
    return {"subscriptions": result.subscriptions, "invoices": result.invoices}


@shared_task(acks_late=True, name="billing.run_scheduled")
def billing_run_scheduled() -> int:
    """Beat entry point: bill everything due now (customers on test clocks excluded)."""
    from billing.services.billing_run import billing_run_start

    run = billing_run_start(as_of=clock.system_now())
    return run.pk
