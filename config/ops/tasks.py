"""Celery tasks of the ops app (found by autodiscovery): the outbox relay, event delivery and
the hand-off sweeper."""

from config.ops.handoffs import handoffs_sweep_task
from config.ops.outbox import deliver_event, outbox_relay_task

__all__ = ["deliver_event", "handoffs_sweep_task", "outbox_relay_task"]
