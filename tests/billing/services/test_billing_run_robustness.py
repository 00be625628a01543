"""Issue 13: one bad subscription never stops a billing run, and the run's record stays true.

Hole 4 (second half): a subscription that cannot be invoiced is recorded with its reason
on the run (console, event, metric); the rest of its chunk is invoiced; a rerun retries
only what is still due. Hole 13: counters are committed with the invoices, a stale run is
swept, and only one run at a time bills a scope.
"""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, OperationalError, connections, transaction
from django.utils import timezone

from billing.models import BillingRun, BillingRunFailure, InvoiceItem, Subscription, TestClock
from billing.services.billing_run import (
    BillingRunAlreadyRunning,
    billing_run_process_chunk,
    billing_run_start,
    billing_run_sweep_stale,
)
from config.events.models import DomainEvent
from invoices.models import Invoice, InvoiceLine
from tests.billing.services.test_billing_run import make_due_subscriptions

DUE = datetime(2026, 3, 1, tzinfo=UTC)
BIGINT_MAX = 9_223_372_036_854_775_807
MONTHLY = {"kind": "interval", "unit": "month", "count": 1}


@pytest.fixture
def priced(db, tax_rate, price_factory):
    return price_factory(unit_amount=Decimal(2900), cycle=MONTHLY)


def renewals():
    return Invoice.objects.filter(billing_reason="subscription_cycle")


def numbers_of(invoices):
    return sorted(int(number.rsplit("-", 1)[1]) for number in invoices.values_list("number", flat=True))


def poison(subscription: Subscription) -> InvoiceItem:
    """A pending item the API would now refuse, written straight into the table."""
    return InvoiceItem.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        description="Poisoned",
        amount=BIGINT_MAX,
        currency="EUR",
    )


# -- hole 4: per-subscription isolation ------------------------------------------------------


@pytest.mark.django_db
def test_a_poisoned_subscription_is_recorded_and_the_rest_of_its_chunk_is_invoiced(customer_factory, priced):
    subscriptions = make_due_subscriptions(count=5, due_at=DUE, customer_factory=customer_factory, price=priced)
    poisoned = subscriptions[2]
    item = poison(poisoned)

    run = billing_run_start(as_of=DUE, chunk_size=10, inline=True)

    others = [s.pk for s in subscriptions if s.pk != poisoned.pk]
    assert sorted(renewals().values_list("subscription_id", flat=True)) == sorted(others)
    assert run.status == BillingRun.Status.DONE
    assert (run.processed, run.total, run.invoices_created, run.failures) == (5, 5, 4, 1)
    failure = BillingRunFailure.objects.get(run=run)
    assert failure.subscription_id == poisoned.pk and failure.resolved_at is None
    assert failure.code == "amount_out_of_range" and failure.attempts == 1
    assert failure.message
    event = DomainEvent.objects.get(type="billing_run.subscription_failed")
    assert event.object_id == str(poisoned.pk) and event.data["run"] == run.pk
    assert event.data["code"] == "amount_out_of_range"
    # Nothing half-built, no number burned: the poisoned period is still due, its item pending.
    poisoned.refresh_from_db()
    assert poisoned.current_period_end == DUE
    assert not Invoice.objects.filter(customer=poisoned.customer).exists()
    assert not InvoiceLine.objects.filter(invoice__customer=poisoned.customer).exists()
    item.refresh_from_db()
    assert item.invoice_id is None
    numbers = numbers_of(renewals())
    assert numbers == list(range(numbers[0], numbers[0] + 4))


@pytest.mark.django_db
def test_a_rerun_retries_only_the_failed_subscription_and_numbers_stay_gapless(customer_factory, priced):
    subscriptions = make_due_subscriptions(count=4, due_at=DUE, customer_factory=customer_factory, price=priced)
    poisoned = subscriptions[1]
    item = poison(poisoned)
    first = billing_run_start(as_of=DUE, inline=True)

    still_failing = billing_run_start(as_of=DUE, inline=True)

    assert (still_failing.total, still_failing.invoices_created, still_failing.failures) == (1, 0, 1)
    assert BillingRunFailure.objects.get(run=still_failing).attempts == 2
    assert BillingRunFailure.objects.get(run=first).resolved_at is not None  # superseded by the retry
    assert renewals().count() == 3

    InvoiceItem.objects.filter(pk=item.pk).update(amount=1500)  # the operator corrects the item
    fixed = billing_run_start(as_of=DUE, inline=True)

    assert (fixed.total, fixed.invoices_created, fixed.failures) == (1, 1, 0)
    assert renewals().filter(subscription=poisoned).count() == 1
    assert renewals().count() == 4  # the three invoiced before are not billed again
    assert not BillingRunFailure.objects.filter(resolved_at__isnull=True).exists()
    assert BillingRunFailure.objects.get(run=still_failing).resolution == BillingRunFailure.Resolution.INVOICED
    numbers = numbers_of(renewals())
    assert numbers == list(range(numbers[0], numbers[0] + 4))


@pytest.mark.django_db
def test_an_unexpected_error_on_one_subscription_is_isolated_too(monkeypatch, customer_factory, priced):
    subscriptions = make_due_subscriptions(count=3, due_at=DUE, customer_factory=customer_factory, price=priced)
    broken = subscriptions[0]
    from billing.services import billing_run

    real_draft = billing_run.renewal_draft

    def draft(**kwargs):
        if kwargs["subscription"].pk == broken.pk:
            raise ValueError("cannot price this subscription")
        return real_draft(**kwargs)

    monkeypatch.setattr(billing_run, "renewal_draft", draft)

    run = billing_run_start(as_of=DUE, inline=True)

    assert run.invoices_created == 2 and run.failures == 1
    failure = BillingRunFailure.objects.get(run=run)
    assert failure.subscription_id == broken.pk
    assert failure.code == "ValueError" and "cannot price" in failure.message


# -- hole 13: exact counters --------------------------------------------------------------------


@pytest.mark.django_db
def test_counters_match_the_committed_invoices_when_a_worker_is_lost_mid_chunk(monkeypatch, customer_factory, priced):
    # Three periods behind: the chunk commits one period per pass, then the worker is lost.
    make_due_subscriptions(count=3, due_at=DUE - timedelta(days=62), customer_factory=customer_factory, price=priced)
    from invoices.services import finalize

    real_issue = finalize.invoices_issue_bulk
    calls = {"n": 0}

    def lose_the_worker_on_the_second_pass(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OperationalError("server closed the connection unexpectedly")
        return real_issue(**kwargs)

    monkeypatch.setattr(finalize, "invoices_issue_bulk", lose_the_worker_on_the_second_pass)
    with pytest.raises(OperationalError):
        billing_run_start(as_of=DUE, inline=True)
    lost = BillingRun.objects.get()

    assert renewals().count() == 3  # the first pass committed
    assert lost.invoices_created == 3
    assert lost.status == BillingRun.Status.FAILED and "server closed" in lost.last_error

    monkeypatch.setattr(finalize, "invoices_issue_bulk", real_issue)
    rerun = billing_run_start(as_of=DUE, inline=True)
    assert rerun.invoices_created == 6 and renewals().count() == 9


@pytest.mark.django_db
def test_a_duplicated_chunk_does_not_count_its_subscriptions_twice(customer_factory, priced):
    subscriptions = make_due_subscriptions(count=5, due_at=DUE, customer_factory=customer_factory, price=priced)
    run = BillingRun.objects.create(as_of=DUE, total=5)
    ids = [s.pk for s in subscriptions]

    billing_run_process_chunk(run_id=run.pk, subscription_ids=ids)
    billing_run_process_chunk(run_id=run.pk, subscription_ids=ids)

    run.refresh_from_db()
    assert (run.processed, run.invoices_created) == (5, 5)
    assert run.status == BillingRun.Status.DONE and run.heartbeat_at is not None


# -- hole 13: the stale-run sweeper -------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_whose_chunks_were_lost_is_swept_and_the_next_run_bills_the_rest(customer_factory, priced):
    subscriptions = make_due_subscriptions(count=3, due_at=DUE, customer_factory=customer_factory, price=priced)
    # Queued, but the chunks never reach a worker (the on_commit hand-off never runs here).
    lost = billing_run_start(as_of=DUE, inline=False)
    assert lost.status == BillingRun.Status.RUNNING

    fresh = billing_run_sweep_stale(now=lost.started_at + timedelta(minutes=2))
    swept = billing_run_sweep_stale(now=lost.started_at + timedelta(hours=1))

    assert fresh == []
    assert [run.pk for run in swept] == [lost.pk]
    lost.refresh_from_db()
    assert lost.status == BillingRun.Status.INTERRUPTED and lost.finished_at is not None
    assert "no progress" in lost.last_error.lower()
    assert DomainEvent.objects.filter(type="billing_run.interrupted", object_id=str(lost.pk)).exists()
    rerun = billing_run_start(as_of=DUE, inline=True)
    assert rerun.invoices_created == 3
    assert sorted(renewals().values_list("subscription_id", flat=True)) == sorted(s.pk for s in subscriptions)


def test_the_sweeper_is_scheduled_in_code(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["billing-runs-sweep"]

    assert schedule["task"] == "billing.runs_sweep"


# -- hole 13: one run at a time per scope -------------------------------------------------------


@pytest.mark.django_db
def test_a_second_run_for_the_same_scope_is_refused_with_a_clear_message(customer_factory, priced):
    make_due_subscriptions(count=2, due_at=DUE, customer_factory=customer_factory, price=priced)
    first = billing_run_start(as_of=DUE, inline=False)  # queued, still running
    clock = TestClock.objects.create(name="other scope", frozen_time=DUE)

    with pytest.raises(BillingRunAlreadyRunning) as refused:
        billing_run_start(as_of=DUE, inline=True)
    with pytest.raises(CommandError) as command:
        call_command("bill", "--at", DUE.isoformat(), "--inline", "--no-progress", stdout=io.StringIO())
    other_scope = billing_run_start(as_of=DUE, test_clock=clock)

    assert "already running" in str(refused.value) and "started at" in str(refused.value)
    assert refused.value.run_id == first.pk
    assert command.value.returncode == 3 and "already running" in str(command.value)
    assert other_scope.status == BillingRun.Status.DONE
    assert BillingRun.objects.filter(test_clock__isnull=True).count() == 1
    assert not renewals().exists()


@pytest.mark.django_db
def test_the_scheduled_run_skips_while_another_run_is_running(customer_factory, priced, caplog):
    from billing.tasks import billing_run_scheduled

    make_due_subscriptions(count=1, due_at=DUE, customer_factory=customer_factory, price=priced)
    billing_run_start(as_of=DUE, inline=False)

    result = billing_run_scheduled.apply().get()

    assert result == 0
    assert BillingRun.objects.count() == 1
    assert "already running" in caplog.text


@pytest.mark.django_db
def test_the_database_refuses_two_running_runs_in_one_scope(db):
    BillingRun.objects.create(as_of=DUE)

    with pytest.raises(IntegrityError), transaction.atomic():
        BillingRun.objects.create(as_of=DUE)
    BillingRun.objects.create(as_of=DUE, status=BillingRun.Status.DONE)  # finished runs are history


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_on_postgres_the_second_is_refused(postgres_only, monkeypatch, customer_factory, priced):
    make_due_subscriptions(count=4, due_at=DUE, customer_factory=customer_factory, price=priced)
    from billing.services import billing_run as service

    inside, release = threading.Event(), threading.Event()
    real_chunk = service.billing_run_process_chunk

    def slow_chunk(**kwargs):
        inside.set()
        release.wait(30)
        return real_chunk(**kwargs)

    monkeypatch.setattr(service, "billing_run_process_chunk", slow_chunk)
    outcome = {}

    def first_run():
        try:
            outcome["run"] = billing_run_start(as_of=DUE, inline=True)
        except Exception as error:  # asserted below
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        assert inside.wait(30), "the first run never started its chunk"
        with pytest.raises(BillingRunAlreadyRunning) as refused:
            billing_run_start(as_of=DUE, inline=True)
        # Its process holds the scope: a slow pass is not a dead run, even long after.
        not_swept = billing_run_sweep_stale(now=timezone.now() + timedelta(hours=2))
    finally:
        release.set()
        thread.join(60)

    assert "already running" in str(refused.value)
    assert not_swept == []
    assert "error" not in outcome and outcome["run"].status == BillingRun.Status.DONE
    assert renewals().count() == 4
    assert BillingRun.objects.count() == 1


@pytest.mark.django_db
def test_the_run_page_lists_its_failed_subscriptions(console, customer_factory, priced):
    from django.urls import reverse

    subscriptions = make_due_subscriptions(count=2, due_at=DUE, customer_factory=customer_factory, price=priced)
    poison(subscriptions[0])
    run = billing_run_start(as_of=DUE, inline=True)

    page = console.get(reverse("admin:billing_billingrun_change", args=[run.pk])).content.decode()

    assert "amount_out_of_range" in page
    assert reverse("admin:billing_subscription_change", args=[subscriptions[0].pk]) in page
    assert "largest amount an invoice can hold" in page


@pytest.mark.django_db
def test_the_metrics_count_failed_subscriptions(customer_factory, priced):
    from config.ops.metrics import TarifCollector

    subscriptions = make_due_subscriptions(count=2, due_at=DUE, customer_factory=customer_factory, price=priced)
    poison(subscriptions[0])
    billing_run_start(as_of=DUE, inline=True)

    samples = {
        sample.name: sample.value
        for family in TarifCollector().collect()
        for sample in family.samples
        if sample.name.startswith("tarif_billing_run")
    }

    assert samples["tarif_billing_run_subscription_failures_total"] == 1
    assert samples["tarif_billing_run_open_failures"] == 1
    assert samples["tarif_billing_runs_running"] == 0


@pytest.mark.django_db
def test_run_billing_now_in_the_console_says_a_run_is_already_running(console, customer_factory, priced):
    from django.urls import reverse

    make_due_subscriptions(count=1, due_at=DUE, customer_factory=customer_factory, price=priced)
    running = billing_run_start(as_of=DUE, inline=False)

    response = console.post(reverse("admin:billing_billingrun_run"), {"as_of": DUE.strftime("%Y-%m-%dT%H:%M:%S")})

    body = response.content.decode()
    assert response.status_code == 200  # the form again, with the reason
    assert "already running" in body and f"run {running.pk}" in body
    assert BillingRun.objects.count() == 1


@pytest.mark.django_db
def test_the_console_retries_only_a_runs_failed_subscriptions_after_a_correction(console, customer_factory, priced):
    from django.urls import reverse

    subscriptions = make_due_subscriptions(count=3, due_at=DUE, customer_factory=customer_factory, price=priced)
    item = poison(subscriptions[0])
    run = billing_run_start(as_of=DUE, inline=True)
    make_due_subscriptions(count=1, due_at=DUE, customer_factory=customer_factory, price=priced)  # due, not failed
    page = console.get(reverse("admin:billing_billingrun_change", args=[run.pk])).content.decode()
    InvoiceItem.objects.filter(pk=item.pk).update(amount=1500)

    response = console.post(reverse("admin:billing_billingrun_retry_failures", args=[run.pk]), follow=True)

    assert reverse("admin:billing_billingrun_retry_failures", args=[run.pk]) in page
    retry = BillingRun.objects.exclude(pk=run.pk).get()
    assert (retry.total, retry.invoices_created, retry.failures) == (1, 1, 0)
    assert "Retry started" in response.content.decode()
    assert renewals().filter(subscription=subscriptions[0]).count() == 1
    assert renewals().count() == 3  # the other due subscription waits for the next full run
    again = console.post(reverse("admin:billing_billingrun_retry_failures", args=[run.pk]), follow=True)
    assert "no failed subscription left" in again.content.decode()
