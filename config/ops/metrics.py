"""Tarif's own Prometheus metrics, next to django-prometheus' request latency and database ones.

Figures that live in the database (billing runs, payments, KPIs) and in the broker (queue
length and age of the oldest waiting task) are read at scrape time by a custom collector,
so every web process reports the same numbers whatever process did the work.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from celery.signals import before_task_publish
from django.conf import settings
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from billing.selectors import billing_run_health
from config.events.consumers import event_consumers_lag
from config.ops.handoffs import Kind, handoffs_overdue
from config.ops.selectors import (
    billing_runs_recent,
    email_delivery_lag,
    kpi_window_start,
    payment_success_rate,
    seconds_invoice_to_cash,
    seconds_period_end_to_invoice,
    webhook_delivery_lag,
)

logger = logging.getLogger(__name__)

SENT_AT_HEADER = "tarif_sent_at"


@before_task_publish.connect
def _stamp_sent_at(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Every task message carries its publish time, so its queue lag can be measured."""
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


def broker_queue_figures() -> dict[str, tuple[int, float | None]]:
    """{queue: (length, age in seconds of the oldest message)} for a Redis broker, else {}."""
    url = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER or not url.startswith(("redis://", "rediss://")):
        return {}
    import redis  # deferred: optional: only a Redis broker is probed

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    figures: dict[str, tuple[int, float | None]] = {}
    now = time.time()
    for queue in settings.TARIF_WORKER_QUEUES.split(","):
        length = client.llen(queue)
        age = None
        oldest = client.lindex(queue, -1) if length else None  # kombu LPUSHes, workers pop from the right
        if oldest:
            try:
                sent_at = json.loads(oldest).get("headers", {}).get(SENT_AT_HEADER)
                age = now - float(sent_at) if sent_at else None
            except (ValueError, TypeError, AttributeError):
                age = None
        figures[queue] = (length, age)
    return figures


class TarifCollector(Collector):
    def describe(self) -> list:
        return []  # registering must not query the database (the registry would call collect())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._database_metrics()
        except Exception:  # a scrape must not fail because the database is away; /readyz says so
            logger.warning("metrics: database figures unavailable", exc_info=True)
        try:
            yield from self._broker_metrics()
        except Exception:
            logger.warning("metrics: broker figures unavailable", exc_info=True)

    def _database_metrics(self) -> Iterator[GaugeMetricFamily]:
        runs = [run for run in billing_runs_recent(limit=1)]
        duration = GaugeMetricFamily(
            "tarif_billing_run_last_duration_seconds", "Duration of the latest finished billing run"
        )
        throughput = GaugeMetricFamily(
            "tarif_billing_run_last_invoices_per_second", "Invoices per second of the latest finished billing run"
        )
        failures = GaugeMetricFamily("tarif_billing_run_last_failures", "Failures in the latest billing run")
        if runs:
            run = runs[0]
            if run.duration_seconds is not None:
                duration.add_metric([], run.duration_seconds)
                throughput.add_metric([], run.invoices_per_second or 0.0)
            failures.add_metric([], run.failures)
        yield from (duration, throughput, failures)
        yield from self._billing_run_health_metrics()

        since = kpi_window_start(days=1)
        rate, settled = payment_success_rate(since=since)
        success = GaugeMetricFamily(
            "tarif_payment_success_ratio", "Share of automatic payment attempts of the last 24 h that succeeded"
        )
        if rate is not None:
            success.add_metric([], rate)
        yield success
        settled_metric = GaugeMetricFamily("tarif_payment_attempts_settled_24h", "Settled payment attempts, last 24 h")
        settled_metric.add_metric([], settled)
        yield settled_metric

        consumers = GaugeMetricFamily(
            "tarif_event_consumer_lag_seconds",
            "Age of the oldest domain event a consumer (webhook endpoint, notifications...) has not read (0: none)",
            labels=["consumer"],
        )
        for name, lag in event_consumers_lag():
            consumers.add_metric([name], lag or 0.0)
        yield consumers

        overdue = handoffs_overdue()
        handoffs = GaugeMetricFamily(
            "tarif_handoffs_overdue",
            "Hand-offs (collection, PDF, notification) not done after their grace period; the sweeper retries them",
            labels=["kind"],
        )
        for kind in Kind.values:
            handoffs.add_metric([kind], overdue.get(kind, 0))
        yield handoffs

        yield from self._delivery_metrics(since)

        month = kpi_window_start(days=30)
        for name, help_text, value in (
            (
                "tarif_period_end_to_invoice_seconds",
                "Average delay from period end to invoice finalization, last 30 days",
                seconds_period_end_to_invoice(since=month),
            ),
            (
                "tarif_invoice_to_cash_seconds",
                "Average delay from invoice finalization to payment, last 30 days",
                seconds_invoice_to_cash(since=month),
            ),
        ):
            metric = GaugeMetricFamily(name, help_text)
            if value is not None:
                metric.add_metric([], value)
            yield metric

    def _billing_run_health_metrics(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        health = billing_run_health()
        yield CounterMetricFamily(
            "tarif_billing_run_subscription_failures",
            "Attempts of a billing run to invoice a subscription that failed (the rest of the chunk was invoiced)",
            value=health.subscription_failures,
        )
        yield GaugeMetricFamily(
            "tarif_billing_run_open_failures",
            "Subscriptions a billing run could not invoice and no later run has invoiced yet",
            value=health.open_failures,
        )
        yield GaugeMetricFamily("tarif_billing_runs_running", "Billing runs in progress", value=health.running)
        yield CounterMetricFamily(
            "tarif_billing_runs_interrupted",
            "Billing runs closed without finishing (killed process, lost chunks: see the stale-run sweeper)",
            value=health.interrupted,
        )

    def _delivery_metrics(self, since) -> Iterator[GaugeMetricFamily]:
        oldest = GaugeMetricFamily(
            "tarif_delivery_lag_seconds",
            "Age of the oldest email or webhook delivery still waiting (0: none waiting)",
            labels=["channel"],
        )
        average = GaugeMetricFamily(
            "tarif_delivery_average_lag_seconds",
            "Average delay from queueing to delivery of the emails or webhooks delivered in the last 24 h",
            labels=["channel"],
        )
        pending = GaugeMetricFamily(
            "tarif_delivery_pending", "Emails or webhook deliveries waiting to go out", labels=["channel"]
        )
        for channel, lag in (
            ("email", email_delivery_lag(since=since)),
            ("webhook", webhook_delivery_lag(since=since)),
        ):
            oldest.add_metric([channel], lag.oldest_pending_seconds or 0.0)
            pending.add_metric([channel], lag.pending)
            if lag.average_seconds is not None:
                average.add_metric([channel], lag.average_seconds)
        yield from (oldest, average, pending)

    def _broker_metrics(self) -> Iterator[GaugeMetricFamily]:
        figures = broker_queue_figures()
        length = GaugeMetricFamily("tarif_task_queue_length", "Tasks waiting in a Celery queue", labels=["queue"])
        lag = GaugeMetricFamily(
            "tarif_task_queue_lag_seconds", "Age of the oldest task waiting in a Celery queue", labels=["queue"]
        )
        for queue, (count, age) in figures.items():
            length.add_metric([queue], count)
            lag.add_metric([queue], age or 0.0)
        yield length
        yield lag


_collector = TarifCollector()
try:
    REGISTRY.register(_collector)
except ValueError:  # registered already (module reloaded)
    pass
