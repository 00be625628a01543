"""config.jobs: services enqueue Celery work by task name, eagerly in the embedded default."""

from __future__ import annotations

import sys

import pytest

from config import jobs
from config.celery import app


def test_a_task_enqueued_by_name_runs_in_process_when_tasks_are_eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True

    result = jobs.enqueue("tarif.ping")

    # An eager result holds its value already (no .get(): eager tasks run on other threads
    # earlier in the suite can leave Celery's "inside a task" flag set, tests/config/test_celery_broker.py).
    assert result.successful() and result.result == "pong"


def test_the_task_modules_are_registered_on_first_use_even_if_nothing_imported_them(monkeypatch):
    # given a process where nothing imported billing/tasks.py (a web worker: only Celery's
    # autodiscovery imports it); monkeypatch puts the module and the task back afterwards
    monkeypatch.delitem(sys.modules, "billing.tasks", raising=False)
    for name in [name for name, task in app.tasks.items() if task.__module__ == "billing.tasks"]:
        monkeypatch.delitem(app.tasks, name)
    assert "billing.collect_invoices" not in app.tasks

    task = jobs.task_for("billing.collect_invoices")

    assert task.name == "billing.collect_invoices"
    assert "billing.tasks" in sys.modules


def test_options_and_arguments_reach_apply_async(monkeypatch):
    sent = []
    task = jobs.task_for("invoices.render_pdf")
    monkeypatch.setattr(task, "apply_async", lambda **call: sent.append(call))

    jobs.enqueue("invoices.render_pdf", kwargs={"invoice_ids": [7]}, countdown=30, queue="documents")

    assert sent == [{"args": (), "kwargs": {"invoice_ids": [7]}, "countdown": 30, "queue": "documents"}]


def test_an_unknown_task_name_is_refused_loudly():
    with pytest.raises(jobs.UnknownTask, match="billing.colect_invoices"):
        jobs.enqueue("billing.colect_invoices", args=[[1]])
