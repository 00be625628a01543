"""The console's Operations page: durations that mean something, and how tasks run said plainly."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import BillingRun
from config.modes import livemode_scope
from config.ops.operations import format_duration
from config.ops.selectors import kpi_window_start, seconds_period_end_to_invoice
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftInvoice, DraftLine

pytestmark = pytest.mark.django_db


def _headlines(page: str) -> dict[str, str]:
    block = page.split('id="report-headlines"', 1)[1].split("tarif-charts", 1)[0]
    labels = re.findall(r'tarif-headline-label">(.*?)</p>', block, re.S)
    values = re.findall(r'tarif-headline-value">(.*?)</p>', block, re.S)
    return {
        html.unescape(label.strip()): html.unescape(value.strip()) for label, value in zip(labels, values, strict=True)
    }


def renewal(customer, price, start, end, *, finalized_at):
    """A renewal invoice of the period [start, end), billed in advance, finalized at `finalized_at`."""
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency=price.currency,
        billing_reason="subscription_cycle",
        lines=(
            DraftLine(
                kind="subscription",
                description=price.nickname,
                amount=int(price.unit_amount),
                unit_amount=price.unit_amount,
                price_id=price.pk,
                period_start=start,
                period_end=end,
            ),
        ),
        period_start=start,
        period_end=end,
    )
    return invoice_finalize(invoice=invoice_create(draft=draft, at=start, customer=customer), at=finalized_at)


@pytest.fixture
def renewals(customer_factory, price_factory, tax_rate):
    """Monthly and yearly renewals billed in advance, finalized 2 hours after their period
    started (the boundary where the previous period ended), a few days ago."""
    monthly = price_factory(nickname="Basic", unit_amount=2900)
    yearly = price_factory(
        nickname="Yearly", unit_amount=120000, cycle={"kind": "interval", "unit": "year", "count": 1}
    )
    boundary = timezone.now() - timedelta(days=5)
    invoices = []
    for price, length in ((monthly, timedelta(days=31)), (yearly, timedelta(days=365))):
        invoices.append(
            renewal(customer_factory(), price, boundary, boundary + length, finalized_at=boundary + timedelta(hours=2))
        )
    return invoices


def test_period_end_to_invoice_is_measured_from_the_boundary_not_the_next_period_end(renewals):
    seconds = seconds_period_end_to_invoice(since=kpi_window_start(days=30))

    # Measured from `period_end` (the end of the period the invoice bills in advance) this was
    # (2 h - 31 days + 2 h - 365 days) / 2 ≈ "-4750 h": the "-3416 h" of the demo's operations page.
    assert seconds == pytest.approx(2 * 3600)


def test_the_operations_page_shows_no_negative_duration(console, renewals):
    page = console.get(reverse("operations")).content.decode()

    headlines = _headlines(page)
    assert headlines["Period end to invoice"] == "2 h"
    assert not any(value.startswith(("-", "−")) for value in headlines.values())


def test_test_mode_renewals_are_not_averaged_with_live_ones(console, renewals, customer_factory, price_factory):
    price = price_factory(nickname="Sandbox", unit_amount=1000)
    boundary = timezone.now() - timedelta(days=10)
    renewal(
        customer_factory(livemode=False),
        price,
        boundary,
        boundary + timedelta(days=31),
        finalized_at=boundary + timedelta(days=3),
    )

    live_page = _headlines(console.get(reverse("operations")).content.decode())
    with livemode_scope(False):
        test_figure = seconds_period_end_to_invoice(since=kpi_window_start(days=30))

    assert live_page["Period end to invoice"] == "2 h"
    assert test_figure == pytest.approx(3 * 86400)


def test_durations_read_in_the_unit_a_person_expects():
    assert format_duration(None) == "—"
    assert format_duration(0.84) == "0.8 s"
    assert format_duration(600) == "10 min"
    assert format_duration(2 * 3600) == "2 h"
    assert format_duration(3 * 86400) == "3 days"


def test_without_a_broker_the_page_says_tasks_run_in_process_not_a_warning(console, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True

    page = console.get(reverse("operations")).content.decode()

    tasks = page.split('id="task-queues"', 1)[1].split("</div>", 1)[0]
    assert "embedded default, with no broker configured" in tasks
    assert "cannot be reached" not in page and "tarif-ops-warning" not in tasks


def test_a_broker_this_page_cannot_measure_is_named_not_called_missing(console, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "amqp://guest@127.0.0.1:5672//"

    tasks = console.get(reverse("operations")).content.decode().split('id="task-queues"', 1)[1]

    assert "amqp broker" in tasks and "no broker configured" not in tasks.split("</div>", 1)[0]


def test_an_unreachable_redis_broker_is_a_warning(console, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    tasks = console.get(reverse("operations")).content.decode().split('id="task-queues"', 1)[1]

    assert "The broker cannot be reached" in tasks.split("</div>", 1)[0]


def test_the_billing_runs_chart_is_labelled_data_for_the_page_script(console):
    run = BillingRun.objects.create(as_of=timezone.now(), status="done", invoices_created=80, failures=1)
    BillingRun.objects.filter(pk=run.pk).update(finished_at=run.started_at + timedelta(seconds=4))

    page = console.get(reverse("operations")).content.decode()

    # Live mode: the run of no test clock is a live run.
    data = re.search(r'<script id="billing-runs-chart" type="application/json">(.*?)</script>', page, re.S)
    assert data, "the chart's data is missing"
    chart = json.loads(html.unescape(data.group(1)))
    assert chart["labels"] == [f"#{run.pk}"]
    assert chart["x_label"] == "billing run" and chart["y_label"] == "invoices per second"
    without, failed = chart["datasets"]
    assert without["data"] == [None] and failed["data"] == [20.0]  # a run with a failure, in red
    assert 'data-chart="billing-runs-chart"' in page and "<script>" not in page
