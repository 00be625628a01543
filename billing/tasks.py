"""Celery tasks: thin wrappers that load ids and call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from billing.services.billing_run import (
    BillingRunAlreadyRunning,
    billing_run_process_chunk,
    billing_run_start,
    billing_run_sweep_stale,
)
from billing.services.dunning import dunning_retry_customer as retry
from billing.services.dunning import dunning_run_due as run_due
from billing.services.dunning import invoices_collect
from billing.services.lifecycle_notices import subscription_notices_sweep
from billing.services.pending_updates import pending_updates_expire
from billing.services.stripe_import import stripe_import_run
from billing.services.usage_partitions import usage_partitions_drop_expired, usage_partitions_ensure
from billing.services.usage_thresholds import usage_thresholds_sweep
from billing.services.webhooks import webhooks_dispatch as dispatch
from billing.stripe_import_models import StripeImportRun
from config import clock
from config.ops.maintenance import maintenance_active

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, max_retries=5, default_retry_delay=30, name="billing.run_chunk")
def billing_run_chunk(self, run_id: int, subscription_ids: list[int]) -> dict[str, int]:
    try:
        result = billing_run_process_chunk(run_id=run_id, subscription_ids=subscription_ids)
    except Exception as error:  # retried; the chunk is idempotent
        raise self.retry(exc=error) from error
    return {"subscriptions": result.subscriptions, "invoices": result.invoices}


@shared_task(acks_late=True, name="billing.run_scheduled")
def billing_run_scheduled() -> int:
    """Beat entry point: bill everything due now (customers on test clocks excluded)."""
    if maintenance_active():
        return 0  # read-only maintenance: the next beat after it bills what became due
    try:
        run = billing_run_start(as_of=clock.system_now())
    except BillingRunAlreadyRunning as refused:
        # The previous run (or a manual `bill`) is still at work: it bills what is due.
        logger.warning("scheduled billing run skipped: %s", refused.messages[0])
        return 0
    return run.pk


@shared_task(acks_late=True, name="billing.runs_sweep")
def billing_runs_sweep() -> int:
    """Beat entry point: mark billing runs without progress interrupted (the next run resumes)."""
    return len(billing_run_sweep_stale())


@shared_task(acks_late=True, name="billing.usage_thresholds_sweep")
def usage_thresholds_sweep_task() -> int:
    """Beat entry point (issue 16): evaluate usage thresholds of customers with new usage."""
    return usage_thresholds_sweep()


@shared_task(bind=True, acks_late=True, max_retries=5, default_retry_delay=60, name="billing.collect_invoices")
def collect_invoices(self, invoice_ids: list[int]) -> int:
    """Charge the charge-automatically invoices of one billing-run chunk (idempotent)."""
    return invoices_collect(invoice_ids=invoice_ids)


@shared_task(acks_late=True, name="billing.dunning_run_due")
def dunning_run_due() -> int:
    """Beat entry point: dunning retries due now (customers on test clocks excluded)."""
    if maintenance_active():
        return 0
    return run_due(as_of=clock.system_now())


@shared_task(acks_late=True, name="billing.dunning_retry_customer")
def dunning_retry_customer(customer_id: int) -> int:
    """A new default payment method: retry the customer's invoices in dunning at once."""
    return retry(customer_id=customer_id)


@shared_task(acks_late=True, name="billing.webhooks_dispatch")
def webhooks_dispatch() -> dict[str, int]:
    """Beat entry point (every few seconds): fan out new domain events, send the webhooks due."""
    outcome = dispatch()
    return {"delivered": outcome.delivered, "failed": outcome.failed}


@shared_task(acks_late=True, name="billing.lifecycle_notices_sweep")
def lifecycle_notices_sweep() -> int:
    """Beat entry point: trial_will_end and invoice.upcoming notices due now (idempotent markers)."""
    if maintenance_active():
        return 0
    return subscription_notices_sweep(as_of=clock.system_now())


@shared_task(acks_late=True, name="billing.pending_updates_expire")
def pending_updates_expire_due() -> int:
    """Beat entry point: discard pending updates whose invoice was not paid in time."""
    if maintenance_active():
        return 0
    return pending_updates_expire(as_of=clock.system_now())


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=60, name="billing.stripe_import_run")
def stripe_import_run_task(self, run_id: int) -> str:
    """Run (or resume) a Stripe import started from the console; a retry resumes from its cursors."""
    run = StripeImportRun.objects.get(pk=run_id)
    try:
        stripe_import_run(run=run)
    except Exception as error:  # the run recorded it; resuming is safe
        raise self.retry(exc=error) from error
    return run.status


@shared_task(acks_late=True, name="billing.usage_partitions_ensure")
def usage_partitions_ensure_task() -> list[str]:
    """Beat entry point (issue 20): the coming months' usage partitions (PostgreSQL)."""
    return usage_partitions_ensure(ahead=settings.TARIF_USAGE_PARTITIONS_AHEAD)


@shared_task(acks_late=True, name="billing.usage_raw_retention")
def usage_raw_retention_task() -> list[str]:
    """Beat entry point (issue 20): drop raw usage partitions past their retention."""
    return list(usage_partitions_drop_expired().dropped)
