"""Each notification, triggered by its event through the test clock, sent once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.services.changes import subscription_change
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create, subscription_pause
from customers.models import NotificationLog, NotificationPreference
from tests.billing.payments.conftest import INSUFFICIENT_FUNDS, T0
from tests.billing.services.conftest import YEARLY

pytestmark = pytest.mark.django_db


def kinds(messages) -> list[str]:
    return [message.subject for message in messages]


def test_invoice_finalized_sends_the_branded_invoice_email_with_its_pdf(clocked_customer, make_price, consume):
    customer = clocked_customer()
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoice = subscription.invoices.get()

    sent = consume()

    invoice_mails = [m for m in sent if invoice.number in m.subject]
    assert len(invoice_mails) == 1
    assert invoice_mails[0].attachments[-1][0] == f"{invoice.number}.pdf"
    assert invoice_mails[0].attachments[-1][1].startswith(b"%PDF")
    assert NotificationLog.objects.get(kind="invoice_finalized").status == NotificationLog.Status.SENT
    assert consume() == []  # never twice


def test_a_payment_sends_a_receipt_once(clocked_customer, make_price, consume, django_capture_on_commit_callbacks):
    from billing.services.dunning import invoices_collect

    customer = clocked_customer()
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoices_collect(invoice_ids=[subscription.invoices.get().pk])

    sent = consume()

    receipts = [m for m in sent if "34,80" in m.subject]
    assert len(receipts) == 1 and "Reçu" in receipts[0].subject  # a French customer, in French
    assert "text/html" in receipts[0].alternatives[0][1]


def test_a_failed_payment_says_why_in_plain_words_and_links_to_the_fix(clocked_customer, make_price, consume):
    from billing.services.dunning import invoices_collect

    customer = clocked_customer(INSUFFICIENT_FUNDS, preferred_language="en")
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoices_collect(invoice_ids=[subscription.invoices.get().pk])

    failed = [m for m in consume() if "did not go through" in m.subject]

    assert len(failed) == 1
    assert "not enough funds" in failed[0].body
    assert "/portal/payment-methods/" in failed[0].body


def test_each_dunning_step_is_sent_once_as_the_clock_advances(clocked_customer, make_price, consume, advance):
    from billing.services.dunning import invoices_collect

    customer = clocked_customer(INSUFFICIENT_FUNDS, preferred_language="en")
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    invoices_collect(invoice_ids=[subscription.invoices.get().pk])
    consume()

    advance(T0 + timedelta(days=2))  # the day-1 retry
    first = [m for m in consume() if "retry failed" in m.subject.lower()]
    advance(T0 + timedelta(days=4))  # the day-3 retry
    second = [m for m in consume() if "retry failed" in m.subject.lower()]
    advance(T0 + timedelta(days=8))  # days 5 and 7, then the final action

    rest = consume()
    assert len(first) == 1 and len(second) == 1
    assert "Retry 1" in first[0].body and "Retry 2" in second[0].body
    assert len([m for m in rest if "retry failed" in m.subject.lower()]) == 2
    assert len([m for m in rest if "Final notice" in m.subject]) == 1
    assert consume() == []


def test_the_card_reminder_goes_30_days_before_the_expiry_month_once(clocked_customer, make_price, consume, advance):
    clocked_customer(exp=(6, 2026), preferred_language="en")  # expires end of June 2026
    consume()

    advance(datetime(2026, 4, 30, 12, tzinfo=UTC))
    assert [m for m in consume() if "expires soon" in m.subject] == []
    advance(datetime(2026, 5, 3, 12, tzinfo=UTC))  # within 30 days of 1 June
    reminders = [m for m in consume() if "expires soon" in m.subject]
    advance(datetime(2026, 5, 20, 12, tzinfo=UTC))

    assert len(reminders) == 1 and "4242" in reminders[0].subject
    assert [m for m in consume() if "expires soon" in m.subject] == []


def test_renewal_reminders_come_7_days_ahead_and_30_for_annual_plans(clocked_customer, make_price, consume, advance):
    customer = clocked_customer(preferred_language="en")
    monthly = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    annual = subscription_create(customer=customer, items=[ItemSpec(make_price(29000, cycle=YEARLY))])
    consume()

    advance(T0 + timedelta(days=20))  # 9 days before the monthly renewal on 2 April
    assert [m for m in consume() if "renews" in m.subject] == []
    advance(T0 + timedelta(days=25))
    monthly_mails = [m for m in consume() if "renews" in m.subject]
    advance(annual.current_period_end - timedelta(days=29))  # in steps of two months
    annual_mails = [m for m in consume() if "renews" in m.subject and "348,00" in m.body.replace("€348.00", "348,00")]

    assert len(monthly_mails) == 1 and "April 2, 2026" in monthly_mails[0].subject
    assert "34.80" in monthly_mails[0].body
    assert len([m for m in annual_mails if "2027" in m.subject]) == 1
    assert monthly.pk != annual.pk


def test_trial_ending_reminder(clocked_customer, make_price, consume, advance):
    customer = clocked_customer(preferred_language="en")
    subscription_create(customer=customer, items=[ItemSpec(make_price(2900))], trial_days=14)
    consume()

    advance(T0 + timedelta(days=12))

    mails = [m for m in consume() if "trial ends" in m.subject]
    assert len(mails) == 1 and "34.80" in mails[0].body


def test_plan_changed_lists_the_prorated_amounts(clocked_customer, make_price, consume, clock):
    customer = clocked_customer(preferred_language="en")
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    consume()

    subscription_change(subscription=subscription, items=[ItemSpec(make_price(7900))], at=T0 + timedelta(days=15))

    mails = [m for m in consume() if m.subject.startswith("Your plan has changed")]
    assert len(mails) == 1
    assert "Unused time on" in mails[0].body and "Remaining time on" in mails[0].body
    assert "-€" in mails[0].body or "−€" in mails[0].body


def test_cancellation_and_pause_are_confirmed(clocked_customer, make_price, consume):
    customer = clocked_customer(preferred_language="en")
    ending = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    paused = subscription_create(customer=customer, items=[ItemSpec(make_price(1900))])
    now_canceled = subscription_create(customer=customer, items=[ItemSpec(make_price(900))])
    consume()

    subscription_cancel(subscription=ending, at_period_end=True)
    subscription_cancel(subscription=now_canceled, at_period_end=False, at=T0 + timedelta(days=1))
    subscription_pause(subscription=paused, at=T0 + timedelta(days=1))

    subjects = kinds(consume())
    assert "Your subscription ends on April 2, 2026" in " ".join(subjects)
    assert any(s.startswith("Your subscription is canceled") for s in subjects)
    assert any(s.startswith("Your subscription is paused") for s in subjects)


def test_reminders_can_be_turned_off_but_transactional_emails_cannot(clocked_customer, make_price, consume, advance):
    customer = clocked_customer(preferred_language="en")
    NotificationPreference.objects.create(customer=customer, kind="upcoming_renewal", enabled=False)
    NotificationPreference.objects.create(customer=customer, kind="invoice_finalized", enabled=False)  # ignored
    subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])

    assert len([m for m in consume() if "Invoice" in m.subject]) == 1
    advance(T0 + timedelta(days=25))

    assert [m for m in consume() if "renews" in m.subject] == []
    assert NotificationLog.objects.get(kind="upcoming_renewal").status == NotificationLog.Status.SKIPPED


def test_real_time_scan_leaves_test_clock_customers_alone(clocked_customer, make_price):
    from customers.notifications.scan import notifications_scan

    customer = clocked_customer()
    subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])

    assert notifications_scan(as_of=T0 + timedelta(days=25)) == 0


def test_a_late_committed_event_below_the_cursor_is_still_handled_once(clocked_customer, make_price, consume):
    from config.events.log import event_record
    from config.events.models import DomainEvent, EventCursor

    customer = clocked_customer(preferred_language="en")
    subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])
    finalized = DomainEvent.objects.get(type="invoice.finalized")
    event_id = finalized.pk
    finalized.delete()  # not committed yet when the consumer passes its id...
    event_record(
        type="customer.updated", object_type="customer", object_id=customer.pk, customer_id=customer.pk, occurred_at=T0
    )
    assert not [m for m in consume() if "Invoice" in m.subject]
    assert EventCursor.objects.get(name="notifications").last_event_id > event_id

    finalized.pk = event_id
    finalized.save(force_insert=True)  # ...committed now, below the cursor
    assert len([m for m in consume() if "Invoice" in m.subject]) == 1
    assert consume() == []


def test_the_beat_task_reads_the_outbox_in_batches_until_it_is_empty(clocked_customer, make_price, monkeypatch):
    from customers import tasks
    from customers.notifications import consumer
    from customers.tasks import notifications_consume

    monkeypatch.setattr(consumer, "BATCH", 2)
    monkeypatch.setattr(tasks, "BATCH", 2)  # the task reads the batch size it imported
    customer = clocked_customer()
    subscription_create(customer=customer, items=[ItemSpec(make_price(2900))])  # three events

    assert notifications_consume.apply().get() == 3
    assert NotificationLog.objects.filter(kind="invoice_finalized").count() == 1
