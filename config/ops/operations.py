"""The console's Operations page: last billing runs, KPIs, queues, slowest endpoints."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from prometheus_client.core import REGISTRY

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

CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 600, 160, 4


def throughput_chart(runs: list[BillingRunFigures]) -> dict[str, Any]:
    """Bars of invoices per second, oldest run on the left (drawn as server-side SVG)."""
    ordered = list(reversed(runs))
    peak = max((run.invoices_per_second or 0.0 for run in ordered), default=0.0) or 1.0
    width = CHART_WIDTH / max(len(ordered), 1)
    bars = []
    for index, run in enumerate(ordered):
        value = run.invoices_per_second or 0.0
        height = round(CHART_HEIGHT * value / peak, 1)
        bars.append(
            {
                "x": round(index * width + BAR_GAP / 2, 1),
                "y": round(CHART_HEIGHT - height, 1),
                "width": round(max(width - BAR_GAP, 1), 1),
                "height": height,
                "failed": bool(run.failures) or run.status == "failed",
                "label": f"#{run.pk}: {value:.1f}/s",
            }
        )
    return {"bars": bars, "width": CHART_WIDTH, "height": CHART_HEIGHT, "peak": peak}


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


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def operations_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("billing.view_billingrun"):
        raise PermissionDenied
    runs = billing_runs_recent(limit=20)
    month = kpi_window_start(days=30)
    rate, settled = payment_success_rate(since=kpi_window_start(days=30))
    try:
        queues = broker_queue_figures()
    except Exception:  # the broker is down: the page still shows the rest
        queues = None
    context = {
        **admin.site.each_context(request),
        "title": _("Operations"),
        "runs": runs,
        "chart": throughput_chart(runs),
        "period_end_to_invoice_hours": _hours(seconds_period_end_to_invoice(since=month)),
        "invoice_to_cash_hours": _hours(seconds_invoice_to_cash(since=month)),
        "payment_success_rate": None if rate is None else 100 * rate,
        "payments_settled": settled,
        "queues": queues,
        "slowest": slowest_endpoints(),
        "event_consumers": event_consumers_lag(),
        "deliveries": [
            (_("Emails"), email_delivery_lag(since=kpi_window_start(days=1))),
            (_("Webhooks"), webhook_delivery_lag(since=kpi_window_start(days=1))),
        ],
    }
    return TemplateResponse(request, "admin/ops/operations.html", context)
