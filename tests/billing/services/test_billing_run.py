"""The billing run bills every due subscription-period exactly once, whatever happens."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection, connections

from billing.models import BillingRun, Subscription, SubscriptionItem, TestClock, UsageEvent
from billing.services.billing_run import billing_run_process_chunk, billing_run_start
from billing.services.payments import payment_method_attach
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create, subscription_pause
from billing.services.usage import usage_events_insert
from invoices.models import Invoice
from tests.billing.payments.conftest import card

ROOT = Path(__file__).resolve().parents[3]
MONTHLY = {"kind": "interval", "unit": "month", "count": 1}
T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def renewals(subscription=None):
    invoices = Invoice.objects.filter(billing_reason="subscription_cycle")
    return invoices.filter(subscription=subscription) if subscription else invoices


def make_due_subscriptions(*, count, due_at, customer_factory, price):
    """Many active subscriptions whose period ends at `due_at`, created in bulk."""
    start = due_at - timedelta(days=31)
    customers = [customer_factory() for _ in range(count)]
    subscriptions = Subscription.objects.bulk_create(
        [
            Subscription(
                customer=customer,
                status="active",
                currency="EUR",
                cycle=MONTHLY,
                billing_cycle_anchor=start,
                current_period_start=start,
                current_period_end=due_at,
            )
            for customer in customers
        ]
    )
    SubscriptionItem.objects.bulk_create(
        [SubscriptionItem(subscription=s, price=price, quantity=2) for s in subscriptions]
    )
    return subscriptions


@pytest.fixture
def priced(db, tax_rate, price_factory):
    return price_factory(unit_amount=Decimal(2900), cycle=MONTHLY)


@pytest.mark.django_db
def test_a_due_subscription_is_renewed_once_with_the_next_period_billed_in_advance(customer, priced):
    subscription = subscription_create(customer=customer, items=[ItemSpec(price=priced, quantity=2)], at=T0)
    period_end = subscription.current_period_end

    run = billing_run_start(as_of=period_end + timedelta(hours=1))
    again = billing_run_start(as_of=period_end + timedelta(hours=2))

    invoice = renewals(subscription).get()
    subscription.refresh_from_db()
    assert run.status == BillingRun.Status.DONE and run.invoices_created == 1
    assert again.total == 0 and renewals().count() == 1
    assert invoice.status == "open" and invoice.number
    assert invoice.period_start == period_end
    assert invoice.period_end == subscription.current_period_end
    assert invoice.subtotal == 5800 and invoice.tax_total == 1160 and invoice.total == 6960
    assert subscription.current_period_start == period_end


@pytest.mark.django_db
def test_a_subscription_behind_by_three_periods_gets_three_contiguous_invoices(customer, priced):
    subscription = subscription_create(customer=customer, items=[ItemSpec(price=priced)], at=T0)

    billing_run_start(as_of=T0 + timedelta(days=95))

    invoices = list(renewals(subscription).order_by("period_start"))
    assert len(invoices) == 3
    assert [(i.period_start.date().isoformat(), i.period_end.date().isoformat()) for i in invoices] == [
        ("2026-02-15", "2026-03-15"),
        ("2026-03-15", "2026-04-15"),
        ("2026-04-15", "2026-05-15"),
    ]
    numbers = [int(i.number.rsplit("-", 1)[1]) for i in invoices]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3


@pytest.mark.django_db
def test_metered_usage_is_billed_in_arrears_on_the_renewal(customer, price_factory, meter, tax_rate):
    metered = price_factory(unit_amount=Decimal("0.5"), usage_type="metered", meter=meter, cycle=MONTHLY)
    subscription = subscription_create(customer=customer, items=[ItemSpec(price=metered)], at=T0)
    end = subscription.current_period_end
    usage_events_insert(
        rows=[
            UsageEvent(
                customer=customer, meter=meter, external_id="a", value=Decimal(1000), timestamp=T0 + timedelta(days=1)
            ),
            UsageEvent(
                customer=customer,
                meter=meter,
                external_id="b",
                value=Decimal(999),
                timestamp=end - timedelta(seconds=1),
            ),
            UsageEvent(customer=customer, meter=meter, external_id="c", value=Decimal(7), timestamp=end),  # next period
        ]
    )

    billing_run_start(as_of=end)

    invoice = renewals(subscription).get()
    usage = invoice.lines.get(kind="usage")
    assert usage.quantity == Decimal(1999)
    assert usage.amount == 1000  # 1999 × 0.5 ct = 999.5 -> 1000 (half away from zero)
    assert usage.period_end == end


@pytest.mark.django_db
def test_cancel_at_period_end_issues_a_final_invoice_and_ends_the_subscription(customer, priced):
    subscription = subscription_create(customer=customer, items=[ItemSpec(price=priced)], at=T0)
    subscription_cancel(subscription=subscription, at=T0 + timedelta(days=3), at_period_end=True)
    end = subscription.current_period_end

    billing_run_start(as_of=end + timedelta(days=40))

    subscription.refresh_from_db()
    assert subscription.status == "canceled" and subscription.ended_at == end
    assert all(line.kind != "subscription" for invoice in renewals(subscription) for line in invoice.lines.all())


@pytest.mark.django_db
def test_a_paused_subscription_is_not_billed(customer, priced):
    subscription = subscription_create(customer=customer, items=[ItemSpec(price=priced)], at=T0)
    subscription_pause(subscription=subscription, at=T0 + timedelta(days=1))

    run = billing_run_start(as_of=T0 + timedelta(days=70))

    assert run.total == 0 and not renewals(subscription).exists()


@pytest.mark.django_db
def test_a_crash_mid_run_leaves_whole_chunks_and_a_rerun_completes_exactly_once(monkeypatch, customer_factory, priced):
    due = datetime(2026, 3, 1, tzinfo=UTC)
    subscriptions = make_due_subscriptions(count=12, due_at=due, customer_factory=customer_factory, price=priced)
    from invoices.services import finalize

    real_issue = finalize.invoices_issue_bulk
    calls = {"n": 0}

    def crash_on_second_chunk(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            # A lost database connection stops the chunk (a data error would only fail one subscription).
            raise OperationalError("worker lost")
        return real_issue(**kwargs)

    monkeypatch.setattr(finalize, "invoices_issue_bulk", crash_on_second_chunk)
    with pytest.raises(OperationalError, match="worker lost"):
        billing_run_start(as_of=due, chunk_size=4, inline=True)
    assert renewals().count() == 4  # the first chunk committed, the second rolled back whole

    monkeypatch.setattr(finalize, "invoices_issue_bulk", real_issue)
    billing_run_start(as_of=due, chunk_size=4, inline=True)

    assert sorted(renewals().values_list("subscription_id", flat=True)) == sorted(s.pk for s in subscriptions)


@pytest.mark.django_db
def test_a_duplicated_chunk_task_bills_nothing_twice(customer_factory, priced):
    from billing.tasks import billing_run_chunk

    due = datetime(2026, 3, 1, tzinfo=UTC)
    subscriptions = make_due_subscriptions(count=5, due_at=due, customer_factory=customer_factory, price=priced)
    run = BillingRun.objects.create(as_of=due, total=5)
    ids = [s.pk for s in subscriptions]

    first = billing_run_chunk.apply(args=(run.pk, ids)).get()
    second = billing_run_chunk.apply(args=(run.pk, ids)).get()

    assert first["invoices"] == 5 and second["invoices"] == 0
    assert renewals().count() == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_chunks_on_postgres_bill_each_period_once(postgres_only, customer_factory, priced):
    due = datetime(2026, 3, 1, tzinfo=UTC)
    subscriptions = make_due_subscriptions(count=30, due_at=due, customer_factory=customer_factory, price=priced)
    run = BillingRun.objects.create(as_of=due, total=60)
    ids = [s.pk for s in subscriptions]
    errors = []

    def worker():
        try:
            billing_run_process_chunk(run_id=run.pk, subscription_ids=ids)
        except Exception as error:  # collected and asserted below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert renewals().count() == 30
    assert sorted(renewals().values_list("subscription_id", flat=True)) == sorted(ids)


def _bill_subprocess(database_name: str, *args: str) -> subprocess.Popen:
    settings_dict = connection.settings_dict
    url = (
        f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD'] or ''}@{settings_dict['HOST']}:"
        f"{settings_dict['PORT']}/{database_name}"
    )
    environment = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    environment.pop("CELERY_BROKER_URL", None)
    return subprocess.Popen(
        [sys.executable, "manage.py", "bill", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
def test_a_killed_billing_process_rerun_bills_every_period_exactly_once(postgres_only, customer_factory, priced):
    due = datetime(2026, 3, 1, tzinfo=UTC)
    subscriptions = make_due_subscriptions(count=300, due_at=due, customer_factory=customer_factory, price=priced)
    database = connection.settings_dict["NAME"]
    arguments = ("--at", due.isoformat(), "--inline", "--chunk-size", "10", "--no-progress", "-v", "2")

    process = _bill_subprocess(database, *arguments)
    for line in process.stdout:
        if line.startswith("chunk committed"):
            process.send_signal(signal.SIGKILL)  # no cleanup, no rollback handler: a power cut
            break
    process.wait(30)
    billed_before_rerun = renewals().count()

    rerun = _bill_subprocess(database, *arguments)
    rerun.communicate(timeout=300)

    assert process.returncode == -signal.SIGKILL
    assert 0 < billed_before_rerun < 300, "the kill must land mid-run for this test to mean anything"
    assert rerun.returncode == 0
    billed = list(renewals().values_list("subscription_id", flat=True))
    assert sorted(billed) == sorted(s.pk for s in subscriptions)  # every period once, none twice
    numbers = sorted(int(n.rsplit("-", 1)[1]) for n in renewals().values_list("number", flat=True))
    assert numbers == list(range(numbers[0], numbers[0] + 300))  # gapless across the crash
    # The killed run is closed by the rerun (its lock died with its process), counters exact.
    killed, finished = BillingRun.objects.order_by("pk")
    assert killed.status == BillingRun.Status.INTERRUPTED and killed.finished_at is not None
    assert killed.invoices_created == billed_before_rerun
    assert finished.status == BillingRun.Status.DONE
    assert finished.invoices_created == 300 - billed_before_rerun


@pytest.mark.django_db
def test_the_bill_command_reports_progress_and_refuses_bad_input(customer_factory, priced):
    due = datetime(2026, 3, 1, tzinfo=UTC)
    make_due_subscriptions(count=3, due_at=due, customer_factory=customer_factory, price=priced)
    output = io.StringIO()

    call_command("bill", "--at", due.isoformat(), "--no-progress", stdout=output)

    assert "Billing 3 due subscription(s)" in output.getvalue()
    assert "3 invoice(s)" in output.getvalue()
    for bad in (["--at", "yesterday"], ["--at", "2026-03-01T00:00:00"], ["--chunk-size", "0"]):
        with pytest.raises(CommandError) as error:
            call_command("bill", *bad, stdout=io.StringIO())
        assert error.value.returncode == 2


@pytest.mark.django_db
def test_advancing_a_test_clock_bills_a_year_for_its_customers_only(customer_factory, priced):
    clock = TestClock.objects.create(name="demo", frozen_time=T0)
    on_clock = customer_factory(test_clock=clock)
    # a card that pays: the command advances in steps (two periods each, Stripe's rule), and
    # dunning runs after each, so an unpaid subscription would be canceled before the year ends
    payment_method_attach(customer=on_clock, source=card("4242424242424242"))
    real = customer_factory()
    simulated = subscription_create(customer=on_clock, items=[ItemSpec(price=priced)])
    subscription_create(customer=real, items=[ItemSpec(price=priced)], at=T0)

    call_command("advance_clock", "demo", "--by", "1y", stdout=io.StringIO(), stderr=io.StringIO())

    clock.refresh_from_db()
    assert clock.frozen_time == T0.replace(year=2027) and clock.status == "ready"
    invoices = list(renewals(simulated).order_by("period_start"))
    assert len(invoices) == 12
    assert invoices[0].finalized_at == invoices[0].period_start  # issued when the simulated time got there
    # Simulated invoices have their own series: the brand's legal series never sees them.
    assert all(invoice.number.startswith("TEST-") for invoice in Invoice.objects.filter(customer=on_clock))
    assert not Invoice.objects.filter(customer=real, number__startswith="TEST-").exists()
    real_numbers = [
        int(n.rsplit("-", 1)[1]) for n in Invoice.objects.filter(customer=real).values_list("number", flat=True)
    ]
    assert real_numbers == [1]
    assert not renewals().exclude(subscription=simulated).exists()
    with pytest.raises(CommandError, match="only moves forward"):
        call_command("advance_clock", "demo", "--to", "2026-01-01T00:00:00Z", stdout=io.StringIO())


def test_the_billing_run_is_scheduled_in_code(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["billing-run"]

    assert schedule["task"] == "billing.run_scheduled"
