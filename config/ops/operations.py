"""The console's Operations page: key figures (cards), the last billing runs (chart and
table), how tasks run and what waits, event and delivery lags, slowest endpoints.

The figures follow the console's live/test switch (config/ops/selectors.py): test-clock
runs and invoices carry their clock's simulated time and are never averaged with live ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from babel.numbers import format_decimal, format_percent
from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from prometheus_client.core import REGISTRY

from config.console import babel_locale
from config.events.consumers import event_consumers_lag
from config.ops.metrics import broker_queue_figures
from config.ops.selectors import (
    BillingRunFigures,
    billing_runs_recent,
    email_delivery_lag,
    kpi_window_start,
    payment_success_rate,
    seconds_invoice_to_cash,
    seconds_period_end_to_invoice,
    webhook_delivery_lag,
)
from reports.charts import NUMBER, Chart, Series, bar_chart


@dataclass(frozen=True, slots=True)
class TaskQueues:
    """How background tasks run, and what waits in their queues.

    `in_process`: the embedded default (no broker configured: tasks run inside the web
    process as they are sent, nothing can wait in a queue: not a warning); `broker`: a
    broker whose queues this page cannot read (only Redis queues are measured); `redis`:
    the figures of each queue; `unreachable`: a Redis broker that did not answer."""

    state: str
    broker: str = ""
    queues: dict[str, tuple[int, float | None]] = field(default_factory=dict)


def task_queues() -> TaskQueues:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return TaskQueues(state="in_process")
    url = settings.CELERY_BROKER_URL
    scheme = url.split("://", 1)[0]
    if not url.startswith(("redis://", "rediss://")):
        return TaskQueues(state="broker", broker=scheme)
    try:
        return TaskQueues(state="redis", broker=scheme, queues=broker_queue_figures())
    except Exception:  # the broker is down: the page still shows the rest
        return TaskQueues(state="unreachable", broker=scheme)


def throughput_chart(runs: list[BillingRunFigures]) -> Chart:
    """Invoices per second of the last runs, oldest on the left; runs with failures in red."""
    ordered = list(reversed(runs))

    def speed(run: BillingRunFigures, *, failed: bool) -> float | None:
        run_failed = bool(run.failures) or run.status == "failed"
        return round(run.invoices_per_second or 0.0, 1) if run_failed == failed else None

    return bar_chart(
        title=_("Billing runs: invoices per second"),
        labels=[f"#{run.pk}" for run in ordered],
        series=[
            Series(_("runs without failure"), [speed(run, failed=False) for run in ordered], "#2851a3"),
            Series(_("runs with failures"), [speed(run, failed=True) for run in ordered], "#c0392b"),
        ],
        x_label=_("billing run"),
        y_label=_("invoices per second"),
        unit=NUMBER,
    )


def format_duration(seconds: float | None) -> str:
    """A duration as finance reads it: seconds, minutes, hours or days, in the page's locale."""
    if seconds is None:
        return "—"
    locale = babel_locale()
    if abs(seconds) < 90:
        return _("%(value)s s") % {"value": format_decimal(round(seconds, 1), locale=locale)}
    if abs(seconds) < 90 * 60:
        return _("%(value)s min") % {"value": format_decimal(round(seconds / 60, 1), locale=locale)}
    if abs(seconds) < 48 * 3600:
        return _("%(value)s h") % {"value": format_decimal(round(seconds / 3600, 1), locale=locale)}
    return _("%(value)s days") % {"value": format_decimal(round(seconds / 86400, 1), locale=locale)}


def slowest_endpoints(limit: int = 10) -> list[dict[str, Any]]:
    """Average latency by view, from this process' django-prometheus histogram (since it started)."""
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], float] = {}
    for family in REGISTRY.collect():
        if family.name != "django_http_requests_latency_seconds_by_view_method":
            continue
        for sample in family.samples:
            key = (sample.labels.get("view", ""), sample.labels.get("method", ""))
            if sample.name.endswith("_sum"):
                sums[key] = sample.value
            elif sample.name.endswith("_count"):
                counts[key] = sample.value
    rows = [
        {
            "view": view,
            "method": method,
            "count": int(counts[(view, method)]),
            "average_ms": 1000 * total / counts[(view, method)],
        }
        for (view, method), total in sums.items()
        if counts.get((view, method))
    ]
    return sorted(rows, key=lambda row: row["average_ms"], reverse=True)[:limit]


def operations_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("billing.view_billingrun"):
        raise PermissionDenied
    runs = billing_runs_recent(limit=20)
    month = kpi_window_start(days=30)
    rate, settled = payment_success_rate(since=month)
    period_end_to_invoice = seconds_period_end_to_invoice(since=month)
    invoice_to_cash = seconds_invoice_to_cash(since=month)
    chart = throughput_chart(runs)
    last_run = runs[0] if runs else None
    headlines = [
        (_("Period end to invoice"), format_duration(period_end_to_invoice), _("average, renewals")),
        (_("Invoice to cash"), format_duration(invoice_to_cash), _("average, paid invoices")),
        (
            _("Payment success rate"),
            "—" if rate is None else format_percent(rate, "#,##0.0 %", locale=babel_locale()),
            ngettext("%(count)s settled attempt", "%(count)s settled attempts", settled) % {"count": settled},
        ),
        (
            _("Last billing run"),
            "—" if last_run is None else format_duration(last_run.duration_seconds),
            ""
            if last_run is None
            else ngettext("%(count)s invoice", "%(count)s invoices", last_run.invoices_created)
            % {"count": last_run.invoices_created},
        ),
    ]
    context = {
        **admin.site.each_context(request),
        "title": _("Operations"),
        "headlines": headlines,
        "runs": [(run, format_duration(run.duration_seconds)) for run in runs],
        "chart": chart.as_json() if runs else None,
        "queues": task_queues(),
        "slowest": slowest_endpoints(),
        "event_consumers": [
            (name, None if lag is None else format_duration(lag)) for name, lag in event_consumers_lag()
        ],
        "deliveries": [
            (channel, lag, format_duration(lag.oldest_pending_seconds), format_duration(lag.average_seconds))
            for channel, lag in (
                (_("Emails"), email_delivery_lag(since=kpi_window_start(days=1))),
                (_("Webhooks"), webhook_delivery_lag(since=kpi_window_start(days=1))),
            )
        ],
        "media": forms.Media(js=["tarif/admin/reports.js"]),
    }
    return TemplateResponse(request, "admin/ops/operations.html", context)
