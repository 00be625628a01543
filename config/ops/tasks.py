"""Celery tasks of the ops app (found by autodiscovery): the hand-off sweeper."""

from config.ops.handoffs import handoffs_sweep_task

__all__ = ["handoffs_sweep_task"]
