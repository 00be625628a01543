"""Celery settings and tasks that make a lost worker lose no work."""

from __future__ import annotations

import pytest


# Importing the task modules runs Celery's Django fixup, whose system checks include
# dj-stripe's (they read its tables).
@pytest.mark.django_db
def test_every_task_that_writes_is_acknowledged_late():
    """Review guard: a task acknowledged on receipt would be lost with its worker."""
    from config.celery import app

    app.loader.import_default_modules()
    tarif_tasks = {name: task for name, task in app.tasks.items() if name.startswith(("billing.", "invoices."))}
    assert tarif_tasks
    early = [name for name, task in tarif_tasks.items() if not task.acks_late]
    assert early == []
    assert app.conf.task_reject_on_worker_lost and app.conf.worker_prefetch_multiplier == 1
