"""The two known lock-order inversions of issue 14, fixed (docs/billing.md, "Lock order").

1. The billing run finalized a canceled subscription's last invoice (customer, invoice,
   number sequence) before it locked the chunk's customers: a lower customer, or any
   customer after the sequence, went against the order.
2. Dunning locked the case (and, through select_related, its invoice) before the
   subscription its final step moves.

Each has a test under the lock-order checker (any database) and one that races the
real code on PostgreSQL, where the old order deadlocked.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError

from billing.models import BillingRun, DunningCase, Subscription
from billing.services import billing_run as billing_run_module
from billing.services import dunning, subscriptions
from billing.services.billing_run import billing_run_start
from billing.services.dunning import dunning_run_due
from billing.services.invoice_items import invoice_item_create
from billing.services.payments import payment_record_manual
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create
from config.events.models import DomainEvent
from invoices.models import Invoice
from invoices.services import finalize as finalize_module
from invoices.services.finalize import invoice_finalize
from tests.billing.payments.conftest import T0, now, subscribe  # noqa: F401 (fixtures)
from tests.billing.services.test_races import race
from tests.invoices.helpers import create_draft

PAUSE = 0.5


@pytest.fixture
def chunk_with_a_cancellation(make_customer, make_price):
    """Two subscriptions due together: the higher customer's cancels at period end with a
    pending item (so its last invoice is finalized at the boundary), the lower one renews."""
    price = make_price(2900)
    lower, higher = make_customer(), make_customer()
    assert lower.pk < higher.pk
    canceling = subscription_create(customer=higher, items=[ItemSpec(price)], at=T0)
    renewing = subscription_create(customer=lower, items=[ItemSpec(price)], at=T0)
    subscription_cancel(subscription=canceling, at=T0 + timedelta(days=3), at_period_end=True)
    invoice_item_create(customer=higher, subscription=canceling, amount=500, currency="EUR", description="Setup", at=T0)
    return canceling, renewing


def _assert_both_billed(run, canceling, renewing):
    canceling.refresh_from_db()
    renewing.refresh_from_db()
    assert run.status == BillingRun.Status.DONE and run.failures == 0
    assert canceling.status == Subscription.Status.CANCELED
    final = Invoice.objects.filter(subscription=canceling).exclude(billing_reason="subscription_create").get()
    assert final.status == Invoice.Status.OPEN and final.lines.filter(amount=500).exists()
    assert Invoice.objects.filter(subscription=renewing, billing_reason="subscription_cycle").count() == 1


@pytest.mark.django_db
def test_the_billing_run_locks_the_chunks_customers_before_a_canceled_subscriptions_last_invoice(
    chunk_with_a_cancellation,
):
    canceling, renewing = chunk_with_a_cancellation

    run = billing_run_start(as_of=canceling.current_period_end + timedelta(hours=1))

    # The suite's lock-order guard fails this test if a customer was locked after the sequence.
    _assert_both_billed(run, canceling, renewing)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_billing_run_and_a_finalization_for_a_chunk_customer_do_not_deadlock(
    postgres_only, chunk_with_a_cancellation, make_price, monkeypatch
):
    # given a draft invoice of the lower customer that staff finalize while the run bills
    canceling, renewing = chunk_with_a_cancellation
    draft_invoice = create_draft(renewing.customer, (700,), at=T0)
    # and the run pausing between the canceled subscription's last invoice and the renewals
    boundary_work = threading.Event()
    original_prepare = subscriptions.subscription_prepare_renewal
    original_bulk = finalize_module.invoices_issue_bulk

    def prepare_renewal(**kwargs):
        boundary_work.set()
        return original_prepare(**kwargs)

    def slow_bulk(*args, **kwargs):
        time.sleep(PAUSE)
        return original_bulk(*args, **kwargs)

    # the run's own reference (imported at the top of billing_run since the imports were hoisted)
    monkeypatch.setattr(billing_run_module, "subscription_prepare_renewal", prepare_renewal)
    monkeypatch.setattr(finalize_module, "invoices_issue_bulk", slow_bulk)

    def finalize_during_the_boundary_work():
        assert boundary_work.wait(timeout=30)
        time.sleep(PAUSE / 5)  # the run finalizes the last invoice meanwhile
        return invoice_finalize(invoice=draft_invoice)

    # when both run at once
    results = race(
        lambda: billing_run_start(as_of=canceling.current_period_end + timedelta(hours=1), inline=True),
        finalize_during_the_boundary_work,
    )

    # then neither was chosen as a deadlock victim, and both did their work
    assert not [r for r in results if isinstance(r, OperationalError)], results
    assert not [r for r in results if isinstance(r, Exception)], results
    draft_invoice.refresh_from_db()
    assert draft_invoice.status == Invoice.Status.OPEN
    _assert_both_billed(BillingRun.objects.get(), canceling, renewing)


@pytest.fixture
def overdue_send_invoice(subscribe, settings):  # noqa: F811 (the imported fixture)
    """A send-invoice invoice one reminder away from the final action (cancel)."""
    settings.TARIF_DUNNING_SCHEDULE_DAYS = [1]
    settings.TARIF_DUNNING_FINAL_ACTION = "cancel"
    subscription, invoice = subscribe(None, collection_method="send_invoice", days_until_due=15)
    dunning_run_due(as_of=T0 + timedelta(days=15, hours=1))  # opens the case
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.ACTIVE
    return subscription, invoice


@pytest.mark.django_db
def test_the_last_reminder_locks_the_subscription_before_the_case(overdue_send_invoice):
    subscription, invoice = overdue_send_invoice

    dunning_run_due(as_of=T0 + timedelta(days=17))

    # The suite's lock-order guard fails this test if the subscription came after the case.
    subscription.refresh_from_db()
    case = DunningCase.objects.get(invoice=invoice)
    assert (case.status, case.final_action) == (DunningCase.Status.EXHAUSTED, "cancel")
    assert subscription.status == Subscription.Status.CANCELED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_last_reminder_and_a_manual_payment_of_its_invoice_do_not_deadlock(
    postgres_only, overdue_send_invoice, monkeypatch, staff
):
    # given the dunning runner slowed inside its step (it holds its locks meanwhile)
    subscription, invoice = overdue_send_invoice
    original = dunning._next_retry
    step_locked = threading.Event()

    def slow_next_retry(case):
        step_locked.set()  # called once the step holds its locks
        time.sleep(PAUSE)
        return original(case)

    monkeypatch.setattr(dunning, "_next_retry", slow_next_retry)

    def pay_during_the_step():
        assert step_locked.wait(timeout=30)
        return payment_record_manual(invoice=invoice, amount=invoice.amount_remaining, method="cash", acting_user=staff)

    # when the last reminder and a payment received by transfer are recorded at once
    results = race(lambda: dunning_run_due(as_of=T0 + timedelta(days=17)), pay_during_the_step)

    # then no deadlock: the step (which locked first) canceled the subscription, then the
    # payment settled the invoice and closed the case as recovered
    assert not [r for r in results if isinstance(r, Exception)], results
    invoice.refresh_from_db()
    subscription.refresh_from_db()
    case = DunningCase.objects.get(invoice=invoice)
    assert invoice.status == Invoice.Status.PAID and invoice.amount_remaining == 0
    assert (case.status, case.final_action) == (DunningCase.Status.RECOVERED, "cancel")
    assert subscription.status == Subscription.Status.CANCELED
    assert list(
        DomainEvent.objects.filter(type__startswith="dunning.").order_by("pk").values_list("type", flat=True)
    ) == ["dunning.started", "dunning.reminder", "dunning.exhausted", "dunning.recovered"]
