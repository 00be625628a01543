"""Customer notifications (docs/portal.md#notifications).

Driven by the domain event outbox (`consumer.py`, a cursor over DomainEvent) and a daily
scan for time-based reminders (`scan.py`, test-clock aware); each notification is a
NotificationLog row unique per (customer, kind, dedupe key), delivered by a Celery task
(`services.notification_deliver`) through Django's email backend.
"""
