"""Hand-offs that follow a commit (collection, PDF rendering) survive a crash between the
commit and the enqueue: the sweeper finds them and they are done exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import Payment, SandboxCharge
from billing.services.billing_run import billing_run_start
from billing.services.payments import payment_method_attach
from config.ops.handoffs import handoffs_sweep
from config.ops.models import Handoff
from invoices.models import Document, Invoice
from invoices.tasks import render_pdf
from tests.billing.payments.conftest import VISA_OK, card
from tests.billing.services.test_billing_run import make_due_subscriptions

ROOT = Path(__file__).resolve().parents[2]
MONTHLY = {"kind": "interval", "unit": "month", "count": 1}
DUE = datetime(2026, 3, 1, tzinfo=UTC)

# Runs the billing run in another process that dies (os._exit: no cleanup, no rollback, no
# atexit) at the first enqueue after a chunk committed, as a power cut would. With a broker
# (not eager) bulk-issued PDFs are queued like the collection, so both hand-offs are at stake.
CRASH_AFTER_COMMIT = """
import os
from django.conf import settings
settings.CELERY_TASK_ALWAYS_EAGER = False
from billing.tasks import collect_invoices
from invoices.tasks import render_pdf
def crash(*args, **kwargs):
    print("committed, crashing before the enqueue", flush=True)
    os._exit(1)
collect_invoices.apply_async = crash
render_pdf.apply_async = crash
from datetime import datetime
from billing.services.billing_run import billing_run_start
billing_run_start(as_of=datetime.fromisoformat("{due}"), inline=True, chunk_size=100)
print("the run finished without enqueueing anything", flush=True)
"""


@pytest.fixture
def priced(db, tax_rate, price_factory):
    return price_factory(unit_amount=Decimal(2900), cycle=MONTHLY)


@pytest.fixture
def due_with_cards(customer_factory, priced):
    subscriptions = make_due_subscriptions(count=3, due_at=DUE, customer_factory=customer_factory, price=priced)
    for subscription in subscriptions:
        payment_method_attach(customer=subscription.customer, source=card(VISA_OK))
    return subscriptions


def renewals():
    return Invoice.objects.filter(billing_reason="subscription_cycle")


def _bill_and_crash_after_commit() -> subprocess.CompletedProcess:
    settings_dict = connection.settings_dict
    url = (
        f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD'] or ''}@{settings_dict['HOST']}:"
        f"{settings_dict['PORT']}/{settings_dict['NAME']}"
    )
    environment = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    environment.pop("CELERY_BROKER_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", CRASH_AFTER_COMMIT.format(due=DUE.isoformat())],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _crash_then_rerun() -> None:
    """The billing process dies after its chunk committed; the next run finds nothing due."""
    crashed = _bill_and_crash_after_commit()
    assert crashed.returncode == 1, crashed.stdout + crashed.stderr
    assert "crashing before the enqueue" in crashed.stdout
    assert renewals().count() == 3  # the chunk committed: three issued renewal invoices
    billing_run_start(as_of=DUE, inline=True)  # the rerun: they are no longer due
    assert renewals().count() == 3
    assert not SandboxCharge.objects.exists() and not Payment.objects.exists()


def _sweep_after_grace() -> int:
    return handoffs_sweep(now=timezone.now() + timedelta(minutes=5))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_process_killed_between_commit_and_enqueue_still_charges_and_renders_each_invoice_once(
    postgres_only, due_with_cards
):
    # given a billing run killed right after its chunk committed, and a rerun that skipped it
    _crash_then_rerun()

    # when the sweeper runs after the grace period (twice: the second finds nothing left)
    swept = _sweep_after_grace()
    swept_again = _sweep_after_grace()

    # then every renewal invoice was charged once and its PDF stored once
    assert swept == 6  # 3 collections + 3 PDFs
    assert swept_again == 0
    assert SandboxCharge.objects.count() == 3
    assert sorted(Payment.objects.values_list("invoice_id", flat=True)) == sorted(
        renewals().values_list("pk", flat=True)
    )
    assert set(renewals().values_list("status", flat=True)) == {Invoice.Status.PAID}
    assert Document.objects.filter(invoice__in=renewals()).count() == 3
    assert not Handoff.objects.filter(done_at__isnull=True).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_negative_control_without_the_durable_rows_the_killed_run_leaves_invoices_uncharged(
    postgres_only, due_with_cards
):
    # given the same crash, but the hand-off rows gone (what on_commit alone used to leave)
    _crash_then_rerun()
    Handoff.objects.all().delete()

    # when the sweeper runs
    swept = _sweep_after_grace()

    # then nothing finds the issued invoices: they stay open, never charged, no PDF
    assert swept == 0
    assert not SandboxCharge.objects.exists()
    assert set(renewals().values_list("status", flat=True)) == {Invoice.Status.OPEN}
    assert not Document.objects.exists()


def test_issuing_records_the_hand_offs_in_its_transaction_and_the_fast_path_completes_them(
    due_with_cards, django_capture_on_commit_callbacks, settings, monkeypatch
):
    # given a broker-like setup (bulk PDFs are queued) whose PDF task is stubbed
    settings.CELERY_TASK_ALWAYS_EAGER = False
    rendered: list[dict] = []
    monkeypatch.setattr(render_pdf, "apply_async", lambda args=(), kwargs=None, **options: rendered.append(kwargs))
    # when the billing run issues the renewals without its on_commit callbacks running
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        billing_run_start(as_of=DUE, inline=True)
    # then the hand-offs are recorded already (the crash case), nothing done yet
    ids = sorted(renewals().values_list("pk", flat=True))
    pending = Handoff.objects.filter(done_at__isnull=True)
    assert sorted(pending.filter(kind=Handoff.Kind.COLLECT_INVOICE).values_list("object_id", flat=True)) == ids
    assert sorted(pending.filter(kind=Handoff.Kind.RENDER_INVOICE).values_list("object_id", flat=True)) == ids

    # when the fast path runs (on_commit), the collection hand-offs are done
    settings.CELERY_TASK_ALWAYS_EAGER = True
    for callback in callbacks:
        callback()
    assert SandboxCharge.objects.count() == 3
    assert not pending.filter(kind=Handoff.Kind.COLLECT_INVOICE).exists()
    assert rendered == [{"invoice_ids": ids, "credit_note_ids": []}]
    # and the sweeper leaves them alone before the grace period, picks up the PDFs after it
    monkeypatch.undo()  # the PDF task runs again
    assert handoffs_sweep() == 0
    assert _sweep_after_grace() == 3
    assert Document.objects.count() == 3 and SandboxCharge.objects.count() == 3


def test_the_sweeper_backs_off_and_a_broker_outage_loses_nothing(
    due_with_cards, django_capture_on_commit_callbacks, monkeypatch
):
    # given issued invoices whose enqueue never happened
    with django_capture_on_commit_callbacks(execute=False):
        billing_run_start(as_of=DUE, inline=True)
    later = timezone.now() + timedelta(minutes=5)

    # when the broker refuses the sweeper's enqueue
    def broker_down(*args, **kwargs):
        raise OSError("Connection refused")

    from billing.tasks import collect_invoices

    with monkeypatch.context() as patched:
        patched.setattr(collect_invoices, "apply_async", broker_down)
        assert handoffs_sweep(now=later) == 0

    # then the rows are pushed back (not swept again at once) and go out on a later sweep
    assert handoffs_sweep(now=later) == 0
    assert handoffs_sweep(now=later + timedelta(hours=1)) == 3
    assert SandboxCharge.objects.count() == 3
    assert Handoff.objects.get(kind=Handoff.Kind.COLLECT_INVOICE, object_id=renewals().first().pk).attempts == 2


def test_the_sweeper_runs_every_minute_and_overdue_hand_offs_show_in_the_metrics(
    due_with_cards, django_capture_on_commit_callbacks, settings
):
    from prometheus_client import generate_latest
    from prometheus_client.registry import REGISTRY

    # given the sweeper's schedule, and issued invoices whose enqueue never happened
    assert settings.CELERY_BEAT_SCHEDULE["handoffs-sweep"]["task"] == "ops.handoffs_sweep"
    settings.TARIF_HANDOFF_GRACE_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=False):
        billing_run_start(as_of=DUE, inline=True)

    # when the metrics are read, then the three collections are overdue
    assert 'tarif_handoffs_overdue{kind="collect_invoice"} 3.0' in generate_latest(REGISTRY).decode()

    # and once swept (the beat task), none is left
    from config.ops.handoffs import handoffs_sweep_task

    assert handoffs_sweep_task() == 3
    assert 'tarif_handoffs_overdue{kind="collect_invoice"} 0.0' in generate_latest(REGISTRY).decode()
