"""Lifecycle events: trial_will_end, invoice.upcoming, invoice.payment_action_required, pending updates."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing.models import Payment, PendingUpdate, SubscriptionItem
from billing.payments.gateway import ChargeResult
from billing.services.lifecycle_notices import subscription_notices_sweep
from billing.services.payments import payment_record_manual, payment_record_outcome
from billing.services.pending_updates import pending_updates_expire
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create
from billing.services.subscriptions.update import ItemUpdate, SubscriptionUpdate, subscription_update
from billing.services.test_clocks import test_clock_advance, test_clock_create
from config.events.models import DomainEvent
from invoices.models import Invoice
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db


def events(type_, subscription=None):
    found = DomainEvent.objects.filter(type=type_)
    if subscription is not None:
        found = found.filter(object_id=str(subscription.pk))
    return list(found.order_by("pk"))


@pytest.fixture
def trialing(make_customer, make_price):
    # 14-day trial from 1 April: ends 15 April; notice 3 days before: 12 April.
    return subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(4900))], at=utc(2024, 4, 1), trial_days=14
    )


@pytest.fixture
def active(make_customer, make_price):
    return subscription_create(customer=make_customer(), items=[ItemSpec(make_price(10000), 2)], at=utc(2024, 4, 1))


def test_trial_will_end_once_at_the_notice(trialing):
    subscription_notices_sweep(as_of=utc(2024, 4, 11, 23))
    assert events("customer.subscription.trial_will_end", trialing) == []
    subscription_notices_sweep(as_of=utc(2024, 4, 12))
    subscription_notices_sweep(as_of=utc(2024, 4, 13))

    (event,) = events("customer.subscription.trial_will_end", trialing)
    assert event.data["trial_end"].startswith("2024-04-15")


def test_extending_the_trial_re_arms_the_notice(trialing):
    subscription_notices_sweep(as_of=utc(2024, 4, 12))
    subscription_update(
        subscription=trialing, changes=SubscriptionUpdate(trial_end=utc(2024, 4, 30)), at=utc(2024, 4, 13)
    )

    subscription_notices_sweep(as_of=utc(2024, 4, 20))
    assert len(events("customer.subscription.trial_will_end", trialing)) == 1
    subscription_notices_sweep(as_of=utc(2024, 4, 27))
    assert len(events("customer.subscription.trial_will_end", trialing)) == 2


def test_a_trial_shorter_than_the_notice_gets_it_at_once(make_customer, make_price):
    short = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(4900))], at=utc(2024, 4, 1), trial_days=2
    )

    (event,) = events("customer.subscription.trial_will_end", short)
    assert event.occurred_at == utc(2024, 4, 1)
    assert subscription_notices_sweep(as_of=utc(2024, 4, 2)) == 0


def test_invoice_upcoming_once_per_period_with_the_totals(active):
    # Renewal 1 May; notice 7 days before: 24 April. 2 x 100.00 + 20 % VAT = 240.00 due.
    assert subscription_notices_sweep(as_of=utc(2024, 4, 23, 23)) == 0
    assert subscription_notices_sweep(as_of=utc(2024, 4, 24)) == 1
    assert subscription_notices_sweep(as_of=utc(2024, 4, 25)) == 0

    (event,) = events("invoice.upcoming", active)
    assert (event.data["subtotal"], event.data["tax_total"], event.data["amount_due"]) == (20000, 4000, 24000)
    assert event.data["renews_at"].startswith("2024-05-01")


def test_no_upcoming_invoice_when_it_ends_with_the_period(active):
    subscription_cancel(subscription=active, at=utc(2024, 4, 10), at_period_end=True)

    assert subscription_notices_sweep(as_of=utc(2024, 4, 25)) == 0
    assert events("invoice.upcoming", active) == []


def test_a_test_clock_advance_fires_the_notices_at_its_time(make_customer, make_price):
    clock = test_clock_create(name="trial", frozen_time=utc(2024, 4, 1))
    customer = make_customer(test_clock=clock, livemode=False)
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(make_price(4900, livemode=False))], at=utc(2024, 4, 1), trial_days=14
    )
    # A real-time sweep does not see test-clock customers.
    assert subscription_notices_sweep(as_of=utc(2024, 4, 13)) == 0

    test_clock_advance(clock=clock, to=utc(2024, 4, 13))

    assert len(events("customer.subscription.trial_will_end", subscription)) == 1
    test_clock_advance(clock=clock, to=utc(2024, 4, 14))
    assert len(events("customer.subscription.trial_will_end", subscription)) == 1


def _open_invoice(subscription):
    return Invoice.objects.filter(subscription_id=subscription.pk).order_by("-pk").first()


def test_payment_action_required_names_the_invoice_and_a_page_to_pay(active):
    invoice = _open_invoice(active)
    payment = Payment.objects.create(
        invoice=invoice,
        customer=active.customer,
        method=Payment.Method.CARD,
        gateway="sandbox",
        amount=invoice.amount_remaining,
        currency=invoice.currency,
        attempt=1,
        idempotency_key=f"invoice:{invoice.pk}:attempt:1",
        attempted_at=utc(2024, 4, 1),
    )

    payment_record_outcome(
        payment=payment,
        result=ChargeResult(status="requires_action", reference="pi_1", amount=payment.amount, currency="EUR"),
        at=utc(2024, 4, 1, 1),
    )

    (event,) = events("invoice.payment_action_required")
    assert event.data["invoice"] == invoice.pk and event.data["amount_due"] == invoice.amount_remaining
    assert event.data["hosted_invoice_url"].endswith(f"/portal/invoices/{invoice.pk}/pay/")


CHANGE_AT = utc(2024, 4, 16)


def _pending_update(active, at=CHANGE_AT):
    item = SubscriptionItem.objects.get(subscription=active)
    subscription_update(
        subscription=active,
        changes=SubscriptionUpdate(
            items=(ItemUpdate(id=item.pk, quantity=3),), payment_behavior="pending_if_incomplete"
        ),
        at=at,
    )
    return PendingUpdate.objects.get(subscription=active)


def test_a_pending_update_waits_for_its_invoice_then_applies(active):
    # 2 -> 3 seats on 16 April: 100.00 x 15/30 = 50.00 + 20 % VAT = 60.00 invoiced at once.
    pending = _pending_update(active)

    assert SubscriptionItem.objects.get(subscription=active).quantity == 2
    assert pending.status == "pending" and pending.invoice.amount_remaining == 6000
    assert pending.expires_at == utc(2024, 4, 16, 23)

    payment_record_manual(invoice=pending.invoice, amount=6000, method="bank_transfer", at=utc(2024, 4, 16, 5))

    pending.refresh_from_db()
    assert pending.status == "applied"
    assert SubscriptionItem.objects.get(subscription=active).quantity == 3
    assert len(events("customer.subscription.pending_update_applied", active)) == 1


def test_an_unpaid_pending_update_expires_and_its_invoice_is_voided(active):
    pending = _pending_update(active)

    assert pending_updates_expire(as_of=utc(2024, 4, 16, 22)) == 0
    assert pending_updates_expire(as_of=utc(2024, 4, 16, 23)) == 1
    assert pending_updates_expire(as_of=utc(2024, 4, 17)) == 0

    pending.refresh_from_db()
    pending.invoice.refresh_from_db()
    assert pending.status == "expired" and pending.invoice.status == "void"
    assert SubscriptionItem.objects.get(subscription=active).quantity == 2
    assert len(events("customer.subscription.pending_update_expired", active)) == 1


def test_items_cannot_change_while_an_update_is_pending(active):
    _pending_update(active)
    item = SubscriptionItem.objects.get(subscription=active)

    with pytest.raises(Exception, match="pending"), transaction.atomic():
        subscription_update(
            subscription=active,
            changes=SubscriptionUpdate(items=(ItemUpdate(id=item.pk, quantity=5),)),
            at=utc(2024, 4, 17),
        )


def test_a_trial_long_enough_also_gets_invoice_upcoming_for_its_first_paid_invoice(trialing):
    # Trial ends 15 April; first paid invoice 49.00 + 20 % = 58.80, noticed from 8 April.
    subscription_notices_sweep(as_of=utc(2024, 4, 7, 23))
    assert events("invoice.upcoming", trialing) == []
    subscription_notices_sweep(as_of=utc(2024, 4, 8))
    subscription_notices_sweep(as_of=utc(2024, 4, 9))

    (event,) = events("invoice.upcoming", trialing)
    assert event.data["amount_due"] == 5880


def test_moving_a_trial_end_within_the_notice_sends_it_at_once(trialing):
    # Trial to 15 April, moved on 5 April to end 7 April: within 3 days, so noticed at the update.
    subscription_update(
        subscription=trialing, changes=SubscriptionUpdate(trial_end=utc(2024, 4, 7)), at=utc(2024, 4, 5)
    )

    (event,) = events("customer.subscription.trial_will_end", trialing)
    assert event.occurred_at == utc(2024, 4, 5) and event.data["trial_end"].startswith("2024-04-07")


def test_the_sweepers_are_beat_tasks_declared_in_code(settings):
    import billing.tasks  # noqa: F401 - registers the tasks, as the worker's autodiscovery does
    from config.celery import app

    for name in ("lifecycle-notices-sweep", "pending-updates-expire"):
        task = settings.CELERY_BEAT_SCHEDULE[name]["task"]
        assert task in app.tasks, task
