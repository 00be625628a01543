"""Notification services that lock, raced by two threads on PostgreSQL: never twice."""

from __future__ import annotations

import pytest
from django.core import mail

from billing.services.subscriptions import ItemSpec, subscription_create
from config.events.models import EventCursor
from customers.models import NotificationLog
from customers.notifications import consumer, services
from customers.notifications.consumer import notifications_consume_events
from customers.notifications.services import notification_deliver
from tests.billing.services.test_races import race, slowed

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def finalized(postgres_only, clocked_customer, make_price, settings):
    settings.TARIF_RENDER_DOCUMENTS = False
    customer = clocked_customer(preferred_language="en")
    return subscription_create(customer=customer, items=[ItemSpec(make_price(2900))]).invoices.get()


def test_two_consumers_queue_each_notification_once(finalized, monkeypatch):
    monkeypatch.setattr(services.transaction, "on_commit", lambda callback, robust=False: None)  # queue only
    slowed(monkeypatch, consumer, "_handle")

    race(notifications_consume_events, notifications_consume_events)

    assert NotificationLog.objects.filter(kind="invoice_finalized").count() == 1
    assert EventCursor.objects.get(name="notifications").last_event_id > 0


def test_two_deliveries_of_one_notification_send_one_email(finalized, monkeypatch):
    monkeypatch.setattr(services.transaction, "on_commit", lambda callback, robust=False: None)
    notifications_consume_events()
    log = NotificationLog.objects.get(kind="invoice_finalized")
    mail.outbox = []
    slowed(monkeypatch, services, "_send")

    race(lambda: notification_deliver(log_id=log.pk), lambda: notification_deliver(log_id=log.pk))

    log.refresh_from_db()
    assert log.status == NotificationLog.Status.SENT
    assert len(mail.outbox) == 1
