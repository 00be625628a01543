"""Celery tasks of the ops app (found by autodiscovery): the outbox relay and event delivery."""

from config.ops.outbox import deliver_event, outbox_relay_task

__all__ = ["deliver_event", "outbox_relay_task"]
