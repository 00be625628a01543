"""Enqueue Celery work by task name: the one way services hand work to a worker.

Services never import a `tasks.py` module (only Celery's autodiscovery does), so the task
modules can import any service without creating an import cycle. A task is named by the
`name=` of its `@shared_task` ("billing.collect_invoices").

The task is resolved in this process and sent with `apply_async`, so the call behaves like
`task.delay(...)` did: with a broker the message goes out (task routes and queues apply),
and in the embedded default (CELERY_TASK_ALWAYS_EAGER) the task runs in-process, which
Celery's `send_task` would ignore. A process where nothing imported the task modules yet
(a web worker) registers them once, on first use, with the autodiscovery a worker runs
(`autodiscover_tasks(force=True)`: each installed app's `tasks` module; not the worker's
`import_default_modules`, whose Django fix-up would run the system checks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from celery.result import AsyncResult

from config.celery import app


class UnknownTask(LookupError):
    """No task of that name is registered (a typo, or an app missing from INSTALLED_APPS)."""


def task_for(name: str) -> Any:
    """The registered task called `name`; autodiscovers the task modules once if needed."""
    if name not in app.tasks:
        app.autodiscover_tasks(force=True)
    try:
        return app.tasks[name]
    except KeyError:
        raise UnknownTask(f"No Celery task is registered as {name!r}.") from None


def enqueue(
    name: str,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    countdown: float | None = None,
    queue: str | None = None,
) -> AsyncResult:
    """Send task `name` with these arguments (ids only, STYLE 9); returns Celery's result handle."""
    options: dict[str, Any] = {}
    if countdown is not None:
        options["countdown"] = countdown
    if queue is not None:
        options["queue"] = queue
    return task_for(name).apply_async(args=tuple(args), kwargs=dict(kwargs or {}), **options)
